"""Real films through the real service: HDR shown right on SDR screens, the viewer's audio track
heard (each track is its own tone), 5.1 folded to stereo with clear dialogue, HEVC in fMP4 that
FFmpeg and GStreamer play, and the multivariant playlist that says what is in the stream.

Every stream is read back the way a player reads it: from the multivariant playlist URL.
"""
import json
import math
import re
import shutil
import subprocess
import time
from array import array

import m3u8
import pytest
import requests

import media_files as mf
from transcode_worker import tonemap
from worker_process import first_segment_url, first_uri, play, probe_duration

pytestmark = pytest.mark.integration

MIN_SATURATION_SHARE = 0.60  # of the SDR picture's, after tone-mapping
MAX_LUMA_ERROR = 0.25


def run_job(worker, job_id, source, **configuration):
    """Post a job and wait for it to complete; returns the job's answer."""
    response = worker.post_job({"job_id": job_id, "source_path": source, "configuration": configuration})
    assert response.status_code == 202, response.text
    return worker.wait_state(job_id, {"COMPLETED", "FAILED"}, timeout=120)


@pytest.fixture
def job(worker, media_root):
    """run(name, **configuration) -> (answer, multivariant URL); every job deleted afterwards."""
    posted = []

    def run(name, **configuration):
        job_id = f"film{len(posted)}"
        posted.append(job_id)
        answer = run_job(worker, job_id, str(media_root / name), **configuration)
        assert answer["state"] == "COMPLETED", answer
        return answer, f"{worker.url}/{job_id}.m3u8"

    yield run
    for job_id in posted:
        worker.delete(job_id)


def ffmpeg_out(*args, stderr=False):
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", *args], capture_output=True, timeout=120, check=True)
    return proc.stderr.decode() if stderr else proc.stdout


def picture_stats(url_or_filter, lavfi=False):
    """(mean luma, mean saturation) over every frame, as signalstats measures them."""
    source = ["-f", "lavfi", "-i", url_or_filter] if lavfi else ["-i", url_or_filter]
    text = ffmpeg_out("-loglevel", "error", *source, "-map", "0:v", "-vf",
                      "signalstats,metadata=print:file=-", "-f", "null", "-").decode()
    values = {key: [float(v) for v in re.findall(rf"lavfi\.signalstats\.{key}=([\d.]+)", text)]
              for key in ("YAVG", "SATAVG")}
    return tuple(sum(v) / len(v) for v in (values["YAVG"], values["SATAVG"]))


def video_stream(path_or_url):
    return json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json", "-show_entries",
         "stream=codec_name,codec_tag_string,pix_fmt,color_transfer,color_primaries,color_space,height",
         path_or_url], capture_output=True, timeout=60, check=True).stdout)["streams"][0]


def variant(url):
    playlist = m3u8.loads(requests.get(url, timeout=30).text, uri=url)
    assert playlist.is_variant and len(playlist.playlists) == 1
    return playlist.playlists[0].stream_info


# -- HDR ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kind, bitrate", [
    (mf.HDR10, "HDR10", 4_000_000), (mf.HDR10_PLUS, "HDR10+", 4_000_000), (mf.HLG, "HLG", 4_000_000),
    (mf.HDR10, "HDR10", 1_000_000),  # 720p to 480p: scaled by zscale in the pass that linearises it
    (mf.HLG, "HLG", 1_000_000),
])
def test_hdr_is_tone_mapped_to_bt709_sdr_close_to_its_sdr_original(job, worker, name, kind, bitrate):
    asked_at = time.time()
    answer, url = job(name, bitrate_bps=bitrate)
    # PQ and HLG with their peak known (MaxCLL 1,000 nits): tone-mapped by the LUT, made or
    # marked used by this job
    lut = worker.workdir / "spool" / "tonemap" / tonemap.lut_name(10.0)
    assert lut.stat().st_mtime >= asked_at - 0.5  # (a coarse file system clock)
    assert answer["tracks"]["video"] == {"codec": "h264", "encoder": "libx264", "hdr": kind, "tone_mapped": True, "range": "SDR"}
    stream = video_stream(first_segment_url(url))
    assert (stream["color_primaries"], stream["color_transfer"], stream["color_space"], stream["pix_fmt"]) == \
        ("bt709", "bt709", "bt709", "yuv420p")
    assert stream["height"] == (720 if bitrate >= 2_500_000 else 480)
    assert variant(url).video_range == "SDR"
    # heavy to make (tone-mapped on the CPU): its first segment is half the worker's first_segment_s
    media = m3u8.load(url.replace(".m3u8", ".media.m3u8"))
    assert [round(s.duration, 2) for s in media.segments[:3]] == [0.5, 0.5, 1.0]
    luma, saturation = picture_stats(url)
    sdr_luma, sdr_saturation = picture_stats(f"{mf.SDR_PICTURE},scale=-2:{stream['height']}", lavfi=True)
    assert abs(luma - sdr_luma) <= MAX_LUMA_ERROR * sdr_luma, (luma, sdr_luma)
    assert saturation >= MIN_SATURATION_SHARE * sdr_saturation, (saturation, sdr_saturation)


def ramp_row(url):
    """Luma (full-range grey) across the middle row of the first frame at `url`."""
    return ffmpeg_out("-loglevel", "error", "-i", url, "-frames:v", "1", "-vf", "format=gray,crop=iw:2:0:ih/2",
                      "-f", "rawvideo", "-")


def test_highlights_are_compressed_not_clipped(job):
    """A ramp from black to 1,000 nits: SDR white (100 nits) comes out near white, and above it
    the picture keeps rising, up to the source's peak: detail in the highlights stays."""
    _, url = job(mf.PQ_RAMP, bitrate_bps=2_000_000)
    row = ramp_row(url)
    width = len(row) // 2
    at = {nits: row[int(width * nits / mf.RAMP_NITS)] for nits in (100, 200, 400, 600)}
    assert at[100] >= 190, at  # SDR white is white, not the grey PQ code value shown as SDR
    levels = list(at.values())
    assert all(b - a >= 3 for a, b in zip(levels, levels[1:])), at  # still rising above white
    assert at[600] < 255, at  # not clipped before the peak


def test_a_plain_sdr_clip_is_left_as_it_is(job, media_root):
    answer, url = job(mf.H264, bitrate_bps=4_000_000)
    assert answer["tracks"]["video"] == {"codec": "h264", "encoder": "libx264", "hdr": "SDR", "tone_mapped": False, "range": "SDR"}
    assert round(m3u8.load(url.replace(".m3u8", ".media.m3u8")).segments[0].duration, 2) == 1.0  # light: as configured
    luma, saturation = picture_stats(url)
    source_luma, source_saturation = picture_stats(str(media_root / mf.H264))
    assert abs(luma - source_luma) <= 0.02 * source_luma and abs(saturation - source_saturation) <= 0.05 * source_saturation


@pytest.mark.parametrize("name, video_range", [(mf.HDR10, "PQ"), (mf.HDR10_PLUS, "PQ"), (mf.HLG, "HLG")])
def test_a_remux_keeps_hdr_as_it_is_and_says_so(job, name, video_range, tmp_path):
    answer, url = job(name, force_remux=True)
    assert answer["tracks"]["video"]["tone_mapped"] is False and answer["tracks"]["video"]["range"] == video_range
    info = variant(url)
    assert info.video_range == video_range and info.codecs.startswith("hvc1.2.")
    media = m3u8.loads(requests.get(first_uri(url), timeout=30).text, uri=first_uri(url))
    init = tmp_path / "init.mp4"
    init.write_bytes(requests.get(media.segments[0].init_section.absolute_uri, timeout=30).content)
    stream = video_stream(str(init))
    assert stream["codec_tag_string"] == "hvc1" and stream["color_transfer"] == {"PQ": "smpte2084", "HLG": "arib-std-b67"}[video_range]


def test_dolby_vision_with_an_hdr10_base_layer_is_tone_mapped(job, worker, media_root):
    video = requests.get(f"{worker.url}/v1/media", params={"source_path": str(media_root / mf.DOVI_8)},
                         timeout=30).json()["video"]
    assert video["hdr"] == "DOVI" and video["dolby_vision"] == {"profile": 8, "base_layer": "HDR10"}
    answer, url = job(mf.DOVI_8, bitrate_bps=4_000_000)
    assert answer["tracks"]["video"] == {"codec": "h264", "encoder": "libx264", "hdr": "DOVI", "tone_mapped": True, "range": "SDR"}
    assert video_stream(first_segment_url(url))["color_transfer"] == "bt709"


def test_dolby_vision_profile_5_is_refused_for_a_transcode_and_remuxed(job, worker, media_root):
    source = str(media_root / mf.DOVI_5)
    video = requests.get(f"{worker.url}/v1/media", params={"source_path": source}, timeout=30).json()["video"]
    assert video["dolby_vision"] == {"profile": 5, "base_layer": None} and video["range"] == "PQ"
    refused = worker.post_job({"job_id": "dovi5", "source_path": source})
    assert refused.status_code == 422
    assert "Dolby Vision profile 5" in refused.json()["fields"]["source_path"][0]
    answer, url = job(mf.DOVI_5, force_remux=True)
    assert answer["tracks"]["video"]["range"] == "PQ" and variant(url).video_range == "PQ"


# -- HEVC in fMP4 --------------------------------------------------------------------------------
HEVC = "hevc 10bit ac3 5.1 ñandú.mkv"


def test_an_hevc_remux_is_fmp4_and_ffmpeg_plays_it_to_its_end(job, media_root):
    _, url = job(HEVC, force_remux=True)
    assert first_segment_url(url).endswith("_0.m4s")
    code, decoded, stderr = play(url)
    assert code == 0, stderr
    assert decoded >= probe_duration(str(media_root / HEVC)) - 0.5


@pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="make test installs GStreamer")
def test_gstreamer_plays_the_hevc_remux_to_its_end(job):
    _, url = job(HEVC, force_remux=True)
    proc = subprocess.run(
        ["gst-launch-1.0", "-m", "playbin", f"uri={url}", "video-sink=fakesink sync=false",
         "audio-sink=fakesink sync=false"], capture_output=True, timeout=120)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0 and "eos" in out.lower(), out[-3000:] + proc.stderr.decode(errors="replace")[-2000:]
    assert "error" not in out.lower().replace("error-", ""), out[-3000:]


# -- the viewer's audio ------------------------------------------------------------------------
def heard(url):
    """The URL of what a player plays by default of a stream's audio: the DEFAULT rendition of
    its first variant's group (every track is a rendition of its own)."""
    parsed = m3u8.loads(requests.get(url, timeout=30).text, uri=url)
    group = parsed.playlists[0].stream_info.audio
    return next(m.absolute_uri for m in parsed.media if m.group_id == group and m.default == "YES")


def tone_hz(url, skip_s=0.5, seconds=1.5):
    """The frequency of the (single) tone of the stream's DEFAULT audio, from its zero crossings."""
    raw = ffmpeg_out("-loglevel", "error", "-ss", str(skip_s), "-i", heard(url), "-map", "0:a", "-t", str(seconds),
                     "-ac", "1", "-ar", "48000", "-f", "s16le", "-")
    samples = array("h", raw)
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / 48000)


FILM_TRACKS = list(mf.FILM_TONES)  # titles, in the file's order


@pytest.mark.parametrize("configuration, title, chosen_by", [
    ({}, "English", "default"),
    ({"audio_language": "de"}, "Deutsch", "audio_language"),
    ({"audio_language": "ger"}, "Deutsch", "audio_language"),
    ({"audio_language": "deu"}, "Deutsch", "audio_language"),
    ({"audio_language": "en"}, "English", "audio_language"),  # not the English commentary
    ({"audio_stream": 2}, "Director's Commentary", "audio_stream"),
    ({"audio_stream": 1, "audio_language": "en"}, "Deutsch", "audio_stream"),  # the stream wins
])
def test_each_rule_picks_the_track_heard(job, configuration, title, chosen_by):
    answer, url = job(mf.FILM, force_remux=True, **configuration)
    audio = answer["tracks"]["audio"]
    assert (audio["stream"], audio["title"], audio["chosen_by"]) == (FILM_TRACKS.index(title), title, chosen_by)
    assert tone_hz(url) == pytest.approx(mf.FILM_TONES[title], rel=0.02)


def test_without_a_default_track_the_first_that_is_not_commentary_plays(job):
    answer, url = job(mf.FILM_NO_DEFAULT)  # a transcode: the rule holds there too
    assert answer["tracks"]["audio"]["chosen_by"] == "first" and answer["tracks"]["audio"]["title"] == "English"
    assert tone_hz(url) == pytest.approx(mf.NO_DEFAULT_TONES["English"], rel=0.02)


@pytest.mark.parametrize("configuration, field, words", [
    ({"audio_language": "fr"}, "configuration.audio_language", "no audio track in French"),
    ({"audio_stream": 3}, "configuration.audio_stream", "no audio stream 3"),
])
def test_a_track_the_source_lacks_is_422_listing_what_it_has(worker, media_root, configuration, field, words):
    response = worker.post_job({"job_id": "lacks", "source_path": str(media_root / mf.FILM),
                                "configuration": configuration})
    assert response.status_code == 422
    message = response.json()["fields"][field][0]
    assert words in message and '0: eng aac stereo "English" (default)' in message
    assert '1: deu aac stereo "Deutsch"' in message and "(commentary)" in message
    assert worker.job("lacks").get("state") is None  # nothing was started


def test_seek_and_a_repeated_command_keep_the_choice(worker, media_root):
    body = {"job_id": "keep", "source_path": str(media_root / mf.FILM),
            "configuration": {"audio_language": "ger", "force_remux": True}}
    try:
        assert worker.post_job(body).status_code == 202
        worker.wait_state("keep", {"COMPLETED"})
        again = worker.post_job(body)
        assert again.status_code == 200 and again.json()["configuration"]["audio_language"] == "ger"
        body["configuration"]["seek_time"] = "00:00:01"
        assert worker.post_job(body).status_code == 202
        answer = worker.wait_state("keep", {"COMPLETED"})
        # the seek's segment is made: nothing runs again, the playlist begins there
        assert answer["tracks"]["audio"]["title"] == "Deutsch" and answer["restarts"] == 0
        assert "#EXT-X-START:TIME-OFFSET=1.000" in requests.get(f"{worker.url}/keep.media.m3u8", timeout=10).text
        assert tone_hz(f"{worker.url}/keep.m3u8", skip_s=0.2, seconds=1.0) == pytest.approx(660, rel=0.02)
    finally:
        worker.delete("keep")


# -- 5.1 to stereo -----------------------------------------------------------------------------
def audio_levels(url):
    """(RMS level dB of the louder channel, overall peak dB) of the stream's DEFAULT audio, by astats."""
    text = ffmpeg_out("-loglevel", "info", "-i", heard(url), "-map", "0:a", "-af", "astats", "-f", "null", "-",
                      stderr=True)
    channels = [float(v) for v in re.findall(r"Channel: \d+\n(?:.*\n)*?.*RMS level dB: (-?[\d.]+|-inf)", text)]
    overall = text[text.index("Overall"):]
    peak = float(re.search(r"Peak level dB: (-?[\d.]+|-inf)", overall).group(1))
    return max(channels), peak


@pytest.mark.parametrize("codec", list(mf.DOWNMIX))
def test_a_51_downmix_keeps_dialogue_clear_and_does_not_clip(job, codec):
    name = mf.DOWNMIX[codec]
    tracks = list(mf.DOWNMIX_TRACKS)
    centre_answer, centre_url = job(name, audio_stream=tracks.index("centre"))
    assert centre_answer["tracks"]["audio"]["downmixed"] is True
    _, fronts_url = job(name, audio_stream=tracks.index("fronts"))
    _, full_url = job(name, audio_stream=tracks.index("full"))
    centre_rms, _ = audio_levels(centre_url)
    fronts_rms, _ = audio_levels(fronts_url)
    # dialogue only in the centre: at most 3 dB below the same tone in the fronts
    assert centre_rms >= fronts_rms - 3.0 - 0.2, (centre_rms, fronts_rms)
    assert fronts_rms >= 20 * math.log10(mf.DOWNMIX_LEVELS["fronts"] / math.sqrt(2)) - 1.0  # the fronts as they were
    _, full_peak = audio_levels(full_url)
    assert full_peak < 0.0, full_peak


# -- GET /v1/media -----------------------------------------------------------------------------
def test_media_lists_every_track_with_positions_a_job_can_name(worker, media_root):
    answer = requests.get(f"{worker.url}/v1/media", params={"source_path": str(media_root / mf.FILM)}, timeout=30)
    assert answer.status_code == 200
    body = answer.json()
    assert body["duration_s"] == pytest.approx(3, abs=0.1) and body["video"]["hdr"] == "SDR"
    assert [(a["stream"], a["language"], a["title"], a["default"], a["commentary"]) for a in body["audio"]] == [
        (0, "eng", "English", True, False), (1, "deu", "Deutsch", False, False),
        (2, "eng", "Director's Commentary", False, True)]
    assert body["audio"][1]["language_name"] == "German" and body["audio"][0]["channels"] == 2
    subs = requests.get(f"{worker.url}/v1/media", params={"source_path": str(media_root / "dts multi-audio subs.mkv")},
                        timeout=30).json()
    assert [(s["stream"], s["codec"], s["text"]) for s in subs["subtitles"]] == [(0, "subrip", True)]
    assert [a["layout"] for a in subs["audio"]] == ["5.1(side)", "stereo"]


@pytest.mark.parametrize("name, kind", [(mf.HDR10_PLUS, "HDR10+"), (mf.HLG, "HLG"), (mf.H264, "SDR")])
def test_media_names_the_hdr_kind(worker, media_root, name, kind):
    video = requests.get(f"{worker.url}/v1/media", params={"source_path": str(media_root / name)},
                         timeout=30).json()["video"]
    assert video["hdr"] == kind


def test_media_describes_hdr(worker, media_root):
    video = requests.get(f"{worker.url}/v1/media", params={"source_path": str(media_root / mf.HDR10)},
                         timeout=30).json()["video"]
    assert (video["codec"], video["profile"], video["bit_depth"], video["hdr"], video["range"]) == \
        ("hevc", "Main 10", 10, "HDR10", "PQ")
    assert (video["color_primaries"], video["color_transfer"], video["color_space"]) == ("bt2020", "smpte2084", "bt2020nc")
    assert (video["width"], video["height"], video["frame_rate"]) == (1280, 720, 24.0)


@pytest.mark.parametrize("path, status", [
    ("{root}/no such film.mkv", 404), ("/etc/passwd", 422), ("{root}/notes.txt", 422), ("relative.mkv", 422),
    ("{root}/../outside.mkv", 422),
])
def test_media_of_a_bad_path_is_an_error_that_says_why(worker, media_root, path, status):
    answer = requests.get(f"{worker.url}/v1/media", params={"source_path": path.format(root=media_root)}, timeout=30)
    assert answer.status_code == status and answer.json()["fields"]["source_path"], answer.text


def test_media_without_a_path_is_400(worker):
    assert requests.get(f"{worker.url}/v1/media", timeout=30).status_code == 400
