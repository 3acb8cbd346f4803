"""Subtitles through the real service: every text track a WebVTT rendition whose cues land on the
frames the source shows them on, from the start and after seeks; the job's choice of track;
burn-in of text and picture tracks.

The film (media_files.SUBTITLED) tells its frames apart by their brightness, so the frame a
cue lands on is read from the picture, the way a player would show it: the cue's time goes
through the segment's X-TIMESTAMP-MAP to a video timestamp, and the frame on screen then is the
last one whose timestamp has passed.
"""
import json
import math
import re
import subprocess

import m3u8
import pytest
import requests

import media_files as mf
from transcode_worker import webvtt
from worker_process import wait_for

pytestmark = pytest.mark.integration


def authoring_offset(path):
    """Movie time of the film's frame 0: the muxer moved the authored times (video and cues
    alike) so that the AAC priming before them is not negative."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "format=start_time:stream=start_time", "-of", "json", path],
                         capture_output=True, timeout=30, check=True)
    report = json.loads(out.stdout)
    return float(report["streams"][0]["start_time"]) - float(report["format"]["start_time"])


def post_and_complete(worker, job_id, source, **configuration):
    response = worker.post_job({"job_id": job_id, "source_path": source, "configuration": configuration})
    assert response.status_code == 202, response.text
    answer = worker.wait_state(job_id, {"COMPLETED", "FAILED"}, timeout=120)
    assert answer["state"] == "COMPLETED", answer
    return answer


def renditions(url):
    """{stream: EXT-X-MEDIA} of a multivariant playlist's subtitle renditions, and the playlist."""
    playlist = m3u8.loads(requests.get(url, timeout=30).text, uri=url)
    found = {int(re.search(r"\.sub(\d+)\.m3u8$", m.uri).group(1)): m for m in playlist.media if m.type == "SUBTITLES"}
    return found, playlist


def fetched_cues(playlist_url):
    """[(start, end, text, mpegts, local)] of every cue in every segment of a WebVTT playlist."""
    playlist = m3u8.loads(requests.get(playlist_url, timeout=30).text, uri=playlist_url)
    assert playlist.segments and playlist.is_endlist
    cues = {}
    for segment in playlist.segments:
        answer = requests.get(segment.absolute_uri, timeout=30)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/vtt"), answer.text
        mapping = re.search(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:([\d:.]+)", answer.text)
        assert answer.text.startswith("WEBVTT") and mapping, answer.text
        for cue in webvtt.parse(answer.text):
            cues[cue.start, cue.end, cue.text] = (int(mapping.group(1)), webvtt.seconds(mapping.group(2)))
    return [(*key, *mapping) for key, mapping in sorted(cues.items())]


def frames(media_url, folder, fmp4):
    """[(timestamp in seconds, frame number)] of the stream's video, as the segments carry them."""
    playlist = m3u8.loads(requests.get(media_url, timeout=30).text, uri=media_url)
    data = b""
    if fmp4:
        data = requests.get(playlist.segments[0].init_section.absolute_uri, timeout=30).content
    for segment in playlist.segments:
        data += requests.get(segment.absolute_uri, timeout=30).content
    path = folder / ("all.mp4" if fmp4 else "all.ts")
    path.write_bytes(data)
    # the timestamps as written (no edit list applied, as players read fMP4)
    text = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-copyts",
                           *(["-ignore_editlist", "1"] if fmp4 else []), "-i", str(path),
                           "-vf", "signalstats,metadata=print:file=-", "-f", "null", "-"],
                          capture_output=True, timeout=60, check=True).stdout.decode()
    times = [float(t) for t in re.findall(r"pts_time:([\d.]+)", text)]
    lumas = [float(v) for v in re.findall(r"lavfi\.signalstats\.YAVG=([\d.]+)", text)]
    return sorted(zip(times, (mf.frame_number(y) for y in lumas)))


def frame_at(frames_, seconds):
    """The frame on screen at a timestamp: the last one whose time has come."""
    shown = [number for time, number in frames_ if time <= seconds + 1e-4]
    return shown[-1] if shown else None


@pytest.mark.parametrize("seek_s, remux, encoder", [
    (0, False, None), (2.55, False, None), (5.3, False, None), (5.3, True, None), (7.0, False, "libx265"),
], ids=["start", "between-cues", "inside-a-cue", "remux-inside-a-cue", "hevc-fmp4"])
def test_every_cue_lands_on_its_frame(worker, media_root, seek_s, remux, encoder, tmp_path):
    source = str(media_root / mf.SUBTITLED)
    offset = authoring_offset(source)
    job_id = f"cues-{int(seek_s * 100)}-{int(remux)}{encoder or ''}"
    post_and_complete(worker, job_id, source, force_remux=remux, encoder=encoder, bitrate_bps=1_000_000,
                      seek_time=f"00:00:{seek_s:06.3f}", subtitle_stream=0)
    try:
        found, multivariant = renditions(f"{worker.url}/{job_id}.m3u8")
        assert found[0].default == "YES" and found[0].language == "en" and found[0].name == "English"
        cues = fetched_cues(found[0].absolute_uri)
        shown = frames(multivariant.playlists[0].absolute_uri, tmp_path, fmp4=encoder == "libx265")
        first_frame = shown[0][1]
        expected = [(a, b, text) for a, b, text in mf.CUES if b > first_frame / mf.SUBTITLED_FPS]
        assert [text for _, _, text, _, _ in cues] == [text for _, _, text in expected], cues
        for (start, end, text, mpegts, local), (source_start, source_end, _) in zip(cues, expected):
            assert (start - offset, end - offset) == pytest.approx((source_start, source_end), abs=0.002)
            to_pts = lambda movie: mpegts / 90000 + movie - local  # noqa: E731  the player's arithmetic
            wanted = math.ceil(source_start * mf.SUBTITLED_FPS - 1e-6)
            if wanted >= first_frame:  # a cue begun before the seek point shows from the first frame
                assert abs(frame_at(shown, to_pts(start)) - wanted) <= 1, (text, frame_at(shown, to_pts(start)), wanted)
            last = math.ceil(source_end * mf.SUBTITLED_FPS - 1e-6) - 1  # its last frame
            assert abs(frame_at(shown, to_pts(end) - 0.5 / mf.SUBTITLED_FPS) - last) <= 1, text
    finally:
        worker.delete(job_id)


# -- burn-in -------------------------------------------------------------------------------------
def pictures(url, seek_s=0.0):
    """{frame number: (brightest pixel where subtitles are drawn, that area's level in the source
    frame)} of a stream: the frame is told by the top of the picture, which no subtitle covers."""
    raw = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", url, "-map", "0:v",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, timeout=120, check=True).stdout
    width, height = 320, 240
    found = {}
    for offset in range(0, len(raw) - width * height + 1, width * height):
        frame = raw[offset:offset + width * height]
        top = sum(frame[:40 * width]) / (40 * width)  # full-range grey of luma 16 + n
        number = round(top * 219 / 255)
        lower = frame[60 * width:235 * width]  # where the cues (bottom, middle) and the box are drawn
        found[number] = max(abs(level - round(top)) for level in (min(lower), max(lower)))
    return found


# Frames far enough from white that white text or a white box shows on them: the film's first 8 s
CHECKED_S = 8


def drawn(found, numbers):
    return {n for n in numbers if n in found and found[n] > 40}


SRT_BURN = (mf.SUBTITLED, {"subtitle_stream": 0, "burn_subtitles": True},
            [(k + 0.15, k + 0.65) for k in range(CHECKED_S)])  # cue k: k + 0.1 to k + 0.7, edges spared
ASS_BURN = (mf.SUBTITLED, {"subtitle_stream": 2, "burn_subtitles": True}, [(3.05, 4.95)])  # styled
PGS_BURN = (mf.PGS_FILM, {"subtitle_stream": 0}, mf.PGS_BOXES)  # a picture track is always burned


@pytest.mark.parametrize("name, configuration, shown, seek_s", [
    (*SRT_BURN, 0), (*SRT_BURN, 5.5), (*ASS_BURN, 0), (*ASS_BURN, 3.5), (*PGS_BURN, 0), (*PGS_BURN, 5.5),
], ids=["srt", "srt-seek", "ass", "ass-seek-inside", "pgs", "pgs-seek"])
def test_burned_subtitles_are_drawn_at_their_times_only(worker, media_root, name, configuration, shown, seek_s):
    job_id = f"burn-{configuration['subtitle_stream']}-{name[:3]}-{int(seek_s)}"
    answer = post_and_complete(worker, job_id, str(media_root / name), bitrate_bps=1_000_000,
                               seek_time=f"00:00:{seek_s:06.3f}", **configuration)
    try:
        assert [s["burned"] for s in answer["tracks"]["subtitles"] if s["default"]] == [True]
        found = pictures(f"{worker.url}/{job_id}.m3u8")
        fps = mf.SUBTITLED_FPS
        inside = {n for a, b in shown for n in range(math.ceil(a * fps) + 1, math.floor(b * fps))}
        outside = set(range(math.ceil(seek_s * fps), CHECKED_S * fps)) - {n for a, b in shown
                                                                    for n in range(math.floor(a * fps) - 1, math.ceil(b * fps) + 2)}
        inside = {n for n in inside if n >= math.ceil(seek_s * fps) + 1 and n in found}
        assert inside and drawn(found, inside) == inside, sorted(inside - drawn(found, inside))
        assert not drawn(found, outside), sorted(drawn(found, outside))
    finally:
        worker.delete(job_id)


# -- the job's choice ----------------------------------------------------------------------------
def test_every_text_track_is_offered_and_a_forced_one_in_the_audio_language_is_the_default(worker, media_root):
    source = str(media_root / mf.SUBTITLED)
    post_and_complete(worker, "offer-en", source, force_remux=True)
    post_and_complete(worker, "offer-fr", source, force_remux=True, audio_language="fr")
    try:
        english, _ = renditions(f"{worker.url}/offer-en.m3u8")
        assert [(m.name, m.language, m.default, m.forced) for _, m in sorted(english.items())] == [
            ("English", "en", "NO", "NO"), ("Français (forcé)", "fr", "NO", "YES"), ("Styled", "en", "NO", "NO")]
        french, multivariant = renditions(f"{worker.url}/offer-fr.m3u8")
        assert (french[1].default, french[1].forced, french[1].autoselect) == ("YES", "YES", "YES")
        assert multivariant.playlists[0].stream_info.subtitles == "subs"
        chosen = worker.job("offer-fr")["tracks"]["subtitles"][1]
        assert (chosen["default"], chosen["chosen_by"], chosen["burned"]) == (True, "forced", False)
        assert [c[2] for c in fetched_cues(french[1].absolute_uri)] == [text for _, _, text in mf.FORCED_CUES]
    finally:
        worker.delete("offer-en")
        worker.delete("offer-fr")


def test_styled_subtitles_keep_italics_and_position_in_webvtt(worker, media_root):
    post_and_complete(worker, "styled", str(media_root / mf.SUBTITLED), force_remux=True)
    try:
        found, _ = renditions(f"{worker.url}/styled.m3u8")
        [cue] = fetched_cues(found[2].absolute_uri)
        assert cue[2] == "<i>stylé</i>"
        playlist = m3u8.loads(requests.get(found[2].absolute_uri, timeout=30).text, uri=found[2].absolute_uri)
        text = "".join(requests.get(s.absolute_uri, timeout=30).text for s in playlist.segments)
        assert re.search(r"--> [\d:.]+ line:50%,center\n<i>stylé</i>", text), text  # {\an5}: the middle
    finally:
        worker.delete("styled")


@pytest.mark.parametrize("name, configuration, field, words", [
    (mf.SUBTITLED, {"subtitle_stream": 3}, "configuration.subtitle_stream",
     'no subtitle stream 3: the source has: 0: eng subrip "English"; 1: fra subrip "Français (forcé)" (forced)'),
    (mf.H264, {"burn_subtitles": True}, "configuration.burn_subtitles", "the source has no subtitles"),
    (mf.PGS_FILM, {"subtitle_stream": 0, "force_remux": True}, "configuration.subtitle_stream",
     "can only be drawn into the picture"),
    (mf.SUBTITLED, {"subtitle_stream": 0, "burn_subtitles": True, "force_remux": True},
     "configuration.burn_subtitles", "a remux does not touch"),
])
def test_a_subtitle_choice_the_source_cannot_satisfy_is_422(worker, media_root, name, configuration, field, words):
    response = worker.post_job({"job_id": "nosubs", "source_path": str(media_root / name), "configuration": configuration})
    assert response.status_code == 422 and words in response.json()["fields"][field][0], response.text
    assert worker.job("nosubs").get("state") is None


def test_switching_subtitles_restarts_where_the_viewer_is(worker, media_root):
    body = {"job_id": "switch", "source_path": str(media_root / mf.SUBTITLED),
            "configuration": {"subtitle_stream": 0, "bitrate_bps": 1_000_000}}
    try:
        assert worker.post_job(body).status_code == 202
        worker.wait_state("switch", {"COMPLETED"})
        assert worker.post_job(body).status_code == 200  # the same choice: the same command
        served = worker.segments_served()
        assert requests.get(f"{worker.url}/switch_3.ts", timeout=30).status_code == 200  # the viewer is here
        wait_for(lambda: worker.segments_served() > served, 5, what="the segment booked")  # nginx sent it
        body["configuration"].update(subtitle_stream=2, burn_subtitles=True)
        switched = worker.post_job(body)
        assert switched.status_code == 202 and switched.json()["restarts"] == 1
        seek = switched.json()["configuration"]["seek_time"]
        assert seek != "00:00:00" and 3.0 <= float(seek.rsplit(":", 1)[1]) <= 5.0, seek  # segment 3 of 1, 1, 2, 2...
        answer = worker.wait_state("switch", {"COMPLETED"})
        assert [s["stream"] for s in answer["tracks"]["subtitles"] if s["burned"]] == [2]
    finally:
        worker.delete("switch")


def slow_extraction(tmp_path):
    """An FFmpeg that takes 3 s more to read a file's subtitles out: a big film on a NAS."""
    slow = tmp_path / "ffmpeg"
    slow.write_text('#!/bin/sh\ncase "$*" in *"-c:s webvtt"*) sleep 3;; esac\nexec ffmpeg "$@"\n')
    slow.chmod(0o755)
    return str(slow)


def test_webvtt_waits_for_a_slow_extraction_after_ffmpeg_has_finished(make_worker, media_root, tmp_path):
    """The job's FFmpeg is done long before the subtitles are read out."""
    worker = make_worker(ffmpeg_path=slow_extraction(tmp_path), playlist_wait_s=20.0)
    post_and_complete(worker, "slowsubs", str(media_root / mf.SUBTITLED), force_remux=True, subtitle_stream=0)
    answer = requests.get(f"{worker.url}/slowsubs_sub0_0.vtt", timeout=30)
    assert answer.status_code == 200 and "cue 0" in answer.text, answer.text
    worker.delete("slowsubs")


def test_a_first_burn_in_waits_for_the_extraction_only_so_long(make_worker, media_root, tmp_path):
    worker = make_worker(ffmpeg_path=slow_extraction(tmp_path), playlist_wait_s=1.0)
    body = {"job_id": "burnwait", "source_path": str(media_root / mf.SUBTITLED),
            "configuration": {"subtitle_stream": 0, "burn_subtitles": True}}
    early = worker.post_job(body)
    assert early.status_code == 503 and early.headers["Retry-After"] == "5", early.text
    assert worker.job("burnwait").get("state") is None
    later = wait_for(lambda: (r := worker.post_job(body)).status_code == 202 and r, 20, interval=0.5,
                     what="the command once the subtitles are read out")
    assert later.json()["tracks"]["subtitles"][0]["burned"]
    worker.delete("burnwait")
