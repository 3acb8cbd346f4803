"""The whole film (issue 26), through the real service: a VOD playlist from the first answer that
adds up to the film, segments made where the player asks, each the same pictures at the same
times whichever run of FFmpeg made it. The film's pictures tell their frame number."""
import concurrent.futures
import json
import math
import os
import signal
import subprocess
from fractions import Fraction
from urllib.parse import urljoin

import m3u8
import pytest
import requests

import media_files as mf
from transcode_worker import grid
from worker_process import first_segment_url

FPS = Fraction(*mf.COUNTED_FPS)
FRAME_S = float(1 / FPS)
SECONDS = 60


@pytest.fixture(scope="module", params=["mp4", "mkv"])
def counted(request, media_root):
    path = media_root / f"counted.{request.param}"
    if not path.exists():
        mf.make_counted(path, SECONDS)
    return str(path)


def video_start(path):
    """Film time of the source's first frame (Matroska may start its video a frame after 0)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=start_time", "-select_streams", "v",
                          "-show_entries", "stream=start_time", "-of", "json", path], capture_output=True,
                         check=True, timeout=30).stdout
    data = json.loads(out)
    return float(data["streams"][0]["start_time"]) - float(data["format"]["start_time"])


def media_playlist(worker, job_id):
    url = urljoin(worker.url + "/", m3u8.loads(requests.get(f"{worker.url}/{job_id}.m3u8", timeout=30).text)
                  .playlists[0].uri)
    text = requests.get(url, timeout=30).text
    return url, text, m3u8.loads(text)


def fetch(url):
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    return response.content


def frames_of(data, init=b""):
    """[(pts seconds, frame number shown)] of every video frame of a segment, decoded alone (with
    its init segment)."""
    blob = init + data
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pts_time",
                            "-of", "csv=p=0", "-"], input=blob, capture_output=True, check=True, timeout=60)
    times = [float(line.strip().rstrip(",")) for line in probe.stdout.decode().split() if line.strip()]
    width, height = mf.COUNTED_SIZE
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", "-", "-map", "0:v", "-f", "rawvideo", "-pix_fmt", "gray",
                          "-vsync", "passthrough", "-"], input=blob, capture_output=True, check=True, timeout=60).stdout
    size = width * height
    numbers = [mf.counted_frame(raw[i:i + size]) for i in range(0, len(raw) - size + 1, size)]
    assert len(numbers) == len(times), (len(numbers), len(times))
    return list(zip(times, numbers))


def video_dts(data):
    """Decode times of a segment's video packets, in file order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=dts_time",
                          "-of", "csv=p=0", "-"], input=data, capture_output=True, check=True, timeout=60).stdout
    return [float(line.strip(",")) for line in out.decode().split()]


def check_segment(playlist, url, n, init=b"", v0=0.0):
    """Segment n shows the frames of its span of film, at their film time plus the job's clock
    (frame k of the source is at film time v0 + k frames)."""
    segments = playlist.segments
    start = sum(s.duration for s in segments[:n])
    frames = frames_of(fetch(urljoin(url, segments[n].uri)), init)
    clock = grid.CLOCK_S + (0.0 if init else grid.MPEGTS_DELAY_S)
    first_pts, first_number = frames[0]
    # the first frame at or after the boundary less half a frame (grid.Grid.cut)
    cut = start - FRAME_S / 2 + grid.CUT_MARGIN_S if n else 0.0
    assert first_number == max(0, math.ceil((cut - v0) / FRAME_S - 1e-6)), (n, start, frames[:3])
    for pts, number in frames:
        assert abs(pts - clock - v0 - number * FRAME_S) < FRAME_S / 2, (n, pts, number)  # one clock
    shown = (frames[-1][1] - frames[0][1] + 1) * FRAME_S
    assert abs(shown - segments[n].duration) < FRAME_S / 2 + 1e-3, (n, shown, segments[n].duration)
    return frames


def check_the_whole_film(worker, job_id, counted, configuration):
    """The job's first playlist is the whole film (VOD, adding up to it within a frame, no
    discontinuity), and each segment, from the start, after a jump far ahead, the next, a jump
    back, the same again and the end, shows its frames at their film time on one clock; the
    playlist never changes."""
    response = worker.post_job({"job_id": job_id, "source_path": counted, "configuration": configuration})
    assert response.status_code == 202, response.text
    url, text, playlist = media_playlist(worker, job_id)
    assert playlist.playlist_type == "vod" and playlist.is_endlist and "DISCONTINUITY" not in text
    assert abs(sum(s.duration for s in playlist.segments) - SECONDS) < FRAME_S
    assert all(s.duration <= playlist.target_duration for s in playlist.segments)
    init = fetch(urljoin(url, playlist.segment_map[0].uri)) if playlist.segment_map else b""
    last = len(playlist.segments) - 1
    v0 = video_start(counted)
    check_segment(playlist, url, 0, init, v0)
    job = worker.job(job_id)
    transcode = not configuration.get("force_remux")
    if transcode and job["state"] == "RUNNING":  # its FFmpeg hangs (a stuck read): it will not get there
        os.kill(job["pid"], signal.SIGSTOP)
    # a jump far ahead, the next, a jump back, the same again, the end
    for n in (last * 3 // 4, last * 3 // 4 + 1, 1, 2, last * 3 // 4, last):
        check_segment(playlist, url, n, init, v0)
    again = requests.get(url, timeout=30).text
    assert again == text  # a VOD playlist never changes
    if transcode and job["state"] == "RUNNING":
        assert worker.job(job_id)["restarts"] >= 1  # the jump ahead started a run there
    assert worker.delete(job_id).status_code == 200


@pytest.mark.parametrize("remux", [False, True])
def test_the_whole_film_from_the_first_answer_and_every_segment_right_after_jumps(worker, counted, remux):
    check_the_whole_film(worker, f"whole-{int(remux)}-{counted.rsplit('.', 1)[1]}", counted,
                         {"force_remux": remux, "bitrate_bps": 500_000})


@pytest.mark.parametrize("encoder", ["libx265", "h264_nvenc", "hevc_nvenc", "h264_qsv", "hevc_qsv", "h264_vaapi",
                                     "hevc_vaapi"])
def test_every_encoder_keeps_the_grid_and_the_clock(worker, counted, encoder):
    """x265 (HEVC in fMP4: one init segment for every run), and each hardware encoder on a machine
    whose trials proved it (skipped where the worker refuses it as not usable): its keyframes are
    forced on the grid (x265's -force_key_frames, NVENC's and QSV's forced IDR, VAAPI's), so every
    segment starts with the frame listed, on the same clock, after jumps too."""
    refused = worker.post_job({"job_id": "probe-hw", "source_path": counted,
                               "configuration": {"encoder": encoder, "bitrate_bps": 500_000}})
    if refused.status_code == 422 and "is not usable on this worker" in refused.text:
        pytest.skip(f"{encoder}: no passed trial on this machine")
    assert refused.status_code == 202, refused.text
    assert worker.delete("probe-hw").status_code == 200
    check_the_whole_film(worker, f"hw-{encoder}-{counted.rsplit('.', 1)[1]}", counted,
                         {"encoder": encoder, "bitrate_bps": 500_000})


def test_racing_requests_far_ahead_start_one_run(worker, counted):
    job_id = "race"
    assert worker.post_job({"job_id": job_id, "source_path": counted,
                            "configuration": {"bitrate_bps": 500_000}}).status_code == 202
    url, _, playlist = media_playlist(worker, job_id)
    worker.wait_state(job_id, {"RUNNING"})
    job = worker.job(job_id)
    os.kill(job["pid"], signal.SIGSTOP)  # it will not get there (a hung read): the requests start a run
    restarts = job["restarts"]
    far = len(playlist.segments) - 3
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: requests.get(urljoin(url, playlist.segments[n].uri), timeout=30),
                                [far] * 4))
    assert [a.status_code for a in answers] == [200] * 4
    assert answers[0].content == answers[1].content == answers[2].content == answers[3].content
    # the player's next: the run after the sprint makes it, started by no request
    answers[2] = requests.get(urljoin(url, playlist.segments[far + 1].uri), timeout=30)
    assert answers[2].status_code == 200
    assert worker.job(job_id)["restarts"] == restarts + 1
    check_segment(playlist, url, far + 1, v0=video_start(counted))
    # the run made `far` alone, fast (a sprint); the next went on from far + 1: decode times rise
    # across the join, as within a run
    dts = video_dts(answers[0].content) + video_dts(answers[2].content)
    assert all(b > a for a, b in zip(dts, dts[1:])), dts
    # (the sound is an audio rendition, made by runs of its own: test_audio_renditions.py checks
    # its joins)
    assert worker.delete(job_id).status_code == 200


def test_the_seeds_seek_starts_the_viewer_there_on_the_same_grid(worker, counted):
    job_id = "seek-grid"
    assert worker.post_job({"job_id": job_id, "source_path": counted}).status_code == 202
    url, text, playlist = media_playlist(worker, job_id)
    second = worker.post_job({"job_id": job_id, "source_path": counted, "configuration": {"seek_time": "00:00:30"}})
    assert second.status_code == 202, second.text
    url, seeked_text, seeked = media_playlist(worker, job_id)
    assert seeked.start.time_offset == 30.0 and seeked.start.precise == "YES"
    assert [s.uri for s in seeked.segments] == [s.uri for s in playlist.segments]  # the same grid
    assert [s.duration for s in seeked.segments] == [s.duration for s in playlist.segments]
    frames = frames_of(fetch(first_segment_url(f"{worker.url}/{job_id}.m3u8")))
    assert frames[0][1] * FRAME_S <= 30.0 < frames[-1][1] * FRAME_S + FRAME_S
    assert worker.delete(job_id).status_code == 200


def test_a_segment_outside_the_film_is_404_at_once(worker, counted):
    assert worker.post_job({"job_id": "outside", "source_path": counted}).status_code == 202
    _, _, playlist = media_playlist(worker, "outside")
    answer = requests.get(f"{worker.url}/outside_{len(playlist.segments)}.ts", timeout=5)
    assert answer.status_code == 404
    assert worker.delete("outside").status_code == 200


def test_ffmpegs_player_told_to_start_at_a_time_shows_that_frame(worker, counted):
    """FFmpeg's HLS demuxer lands on the first keyframe at or after the time it is told (hls.c drops
    packets until one), and a transcode's keyframes are its segment boundaries: it shows the frame
    at the first boundary the playlist puts at or after that time, wherever the run is."""
    job_id = "player-ss"
    assert worker.post_job({"job_id": job_id, "source_path": counted}).status_code == 202
    _, _, playlist = media_playlist(worker, job_id)
    boundaries = [sum(s.duration for s in playlist.segments[:n]) for n in range(len(playlist.segments))]
    v0 = video_start(counted)
    for at in (40.0, 12.5, 31.0):  # ahead of FFmpeg, then back, then ahead again
        width, height = mf.COUNTED_SIZE
        raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{at}", "-i", f"{worker.url}/{job_id}.m3u8",
                              "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                             capture_output=True, check=True, timeout=60).stdout
        shown = mf.counted_frame(raw[:width * height])
        expected = min(b for b in boundaries if b >= at - FRAME_S / 2)
        assert abs(v0 + shown * FRAME_S - expected) <= FRAME_S, (at, shown, expected)
    assert worker.delete(job_id).status_code == 200
