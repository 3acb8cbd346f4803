"""Every playlist the worker serves keeps the RFC 8216 rules players rely on, and every source
kind comes out with audio (its DEFAULT rendition) and video in step and the length it should have.

The playlists are parsed by `m3u8` (PyPI); the segments are fetched over HTTP and read by ffprobe
(an fMP4 one after its init segment, as a player joins them).
"""
import json
import subprocess
import time

import m3u8
import pytest
import requests

import media_files as mf
from worker_process import probe_duration

SEGMENT_S = 2.0  # the test worker's segment_duration_s
MAX_AV_GAP_S = 0.1


def ffprobe_json(url, *args):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, url],
                         capture_output=True, timeout=60, check=True)
    return json.loads(out.stdout)


def starts_with_keyframe(url):
    packets = ffprobe_json(url, "-select_streams", "v:0", "-read_intervals", "%+#1",
                           "-show_entries", "packet=flags")["packets"]
    return bool(packets) and packets[0]["flags"].startswith("K")


def stream_starts(url):
    """{"video": first pts in seconds, "video_dts": the first packet's decode time, "audio": first
    pts} of one segment."""
    streams = ffprobe_json(url, "-show_entries", "stream=codec_type,start_time")["streams"]
    found = {s["codec_type"]: float(s["start_time"]) for s in streams if "start_time" in s}
    first = ffprobe_json(url, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_entries",
                         "packet=dts_time")["packets"]
    if first and "dts_time" in first[0]:
        found["video_dts"] = float(first[0]["dts_time"])
    return found


# ffprobe's names of what the CODECS attribute encodes (RFC 6381, ISO/IEC 14496-15 annex E)
AVC_PROFILES = {"Baseline": 66, "Constrained Baseline": 66, "Main": 77, "High": 100, "High 10": 110}
HEVC_PROFILES = {"Main": 1, "Main 10": 2}
AAC_OBJECT_TYPES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}


def codec_matches(codec, stream):
    """True when one CODECS entry says what ffprobe found in a stream of the segments."""
    parts = codec.split(".")
    name, profile = stream["codec_name"], stream.get("profile")
    if name == "h264":
        return parts[0] == "avc1" and int(parts[1][:2], 16) == AVC_PROFILES[profile] \
            and int(parts[1][4:], 16) == stream["level"]
    if name == "hevc":
        return parts[0] == stream["codec_tag_string"] == "hvc1" and parts[1] == str(HEVC_PROFILES[profile]) \
            and parts[3] == f"L{stream['level']}"
    if name == "aac":
        return codec == f"mp4a.40.{AAC_OBJECT_TYPES[profile]}"
    if name == "mp3":
        return codec == "mp4a.40.34"
    return False


class PlaylistWatcher:
    """Reads a job's playlists the way a player does: the multivariant playlist once, then the
    media playlist it names, polled, checking each answer against the rules of a VOD playlist:
    the whole film from the first answer, never changing."""

    def __init__(self, worker, job_id, fmp4=False, start_s=0.0):
        self.worker, self.job_id, self.fmp4, self.start_s = worker, job_id, fmp4, start_s
        self.url = f"{worker.url}/{job_id}.m3u8"
        self.media_url = None
        self.audio_url = None
        self.variant = None  # the multivariant playlist's first variant
        self.text = None  # the first answer: every later one is the same
        self.segments = []  # (uri, duration)
        self.answers = 0

    def poll(self):
        """One request; returns the parsed media playlist (None before it is playable)."""
        before = self.worker.job(self.job_id)["state"]
        response = requests.get(self.media_url or self.url, timeout=30)
        if response.status_code != 200:
            assert before == "STARTING" and response.status_code == 503, (response.status_code, response.text)
            return None
        if self.media_url is None:
            self.check_multivariant(m3u8.loads(response.text, uri=self.url))
            return self.poll()
        playlist = m3u8.loads(response.text)
        self.check(playlist, response.text)
        self.answers += 1
        return playlist

    def check_multivariant(self, multivariant):
        # one video; a variant for each audio group (the stereo one first), all naming it
        assert multivariant.is_variant and len({p.uri for p in multivariant.playlists}) == 1
        self.variant = multivariant.playlists[0]
        info = self.variant.stream_info
        assert info.bandwidth >= info.average_bandwidth > 0
        assert info.codecs and info.frame_rate > 0 and info.video_range in ("SDR", "PQ", "HLG")
        assert info.resolution and all(info.resolution)
        self.media_url = self.variant.absolute_uri
        assert self.media_url == f"{self.worker.url}/{self.job_id}.media.m3u8"
        defaults = [m for m in multivariant.media if m.type == "AUDIO" and m.group_id == info.audio and m.default == "YES"]
        assert info.audio in (None, "stereo") and len(defaults) == (1 if info.audio else 0)
        self.audio_url = defaults[0].absolute_uri if defaults else None

    def audio_playlist(self):
        """The DEFAULT audio rendition's media playlist (None for a silent source), checked as the
        video's: the same rules, the same grid."""
        if self.audio_url is None:
            return None
        text = requests.get(self.audio_url, timeout=30).text
        playlist = m3u8.loads(text)
        assert playlist.playlist_type == "vod" and playlist.is_endlist and "#EXT-X-DISCONTINUITY" not in text
        assert [(s.duration) for s in playlist.segments] == [d for _, d in self.segments]
        return playlist

    def check(self, playlist, text):
        assert playlist.playlist_type == "vod" and playlist.is_endlist  # the whole film, at once
        assert playlist.is_independent_segments and "#EXT-X-DISCONTINUITY" not in text
        assert playlist.start is not None and playlist.start.time_offset == self.start_s
        assert playlist.segments
        # no segment longer than the target duration (Apple HLS Authoring 7.7)
        assert all(s.duration <= playlist.target_duration for s in playlist.segments), \
            ([s.duration for s in playlist.segments], playlist.target_duration)
        # segment n is the n-th of the film
        assert playlist.media_sequence == 0
        uris = [s.uri for s in playlist.segments]
        extension = "m4s" if self.fmp4 else "ts"
        assert uris == [f"{self.job_id}_{i}.{extension}" for i in range(len(uris))]
        # fMP4: one init segment for the job; MPEG-TS: none
        maps = {s.init_section.uri for s in playlist.segments if s.init_section}
        assert maps == ({f"{self.job_id}_init_0.mp4"} if self.fmp4 else set())
        # a VOD playlist never changes once answered (RFC 8216 6.2.1)
        if self.text is None:
            self.text = text
        assert text == self.text
        self.segments = [(s.uri, s.duration) for s in playlist.segments]

    def until_completed(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            playlist = self.poll()
            if playlist is not None and self.worker.job(self.job_id)["state"] == "COMPLETED":
                return playlist
            time.sleep(0.05)
        raise AssertionError(f"{self.url} did not complete in {timeout}s")


def fetch_segments(worker, playlist, folder, first=0, numbers=None):
    """Each listed segment from `first` on (or those `numbers`) downloaded into `folder` as a file
    ffprobe can read alone (an fMP4 one after its init segment, as a player joins them); returns
    the paths."""
    init = b""
    if playlist.segments[0].init_section:
        init = requests.get(f"{worker.url}/{playlist.segments[0].init_section.uri}", timeout=30).content
    paths = []
    for segment in playlist.segments[first:] if numbers is None else [playlist.segments[n] for n in numbers]:
        url = f"{worker.url}/{segment.uri}"
        assert requests.head(url, timeout=30).status_code == 200, url
        path = folder / segment.uri
        path.write_bytes(init + requests.get(url, timeout=30).content)
        paths.append(str(path))
    return paths


def check_segments(worker, playlist, expected_s, folder, first=0, audio=None):
    """Every listed segment (from `first` on) is fetchable and starts with a keyframe; the first
    and last start together with the same-numbered segments of the `audio` rendition's playlist;
    the durations add up to the expected length. Returns the video's paths and the audio's."""
    paths = fetch_segments(worker, playlist, folder, first)
    for path in paths:
        assert starts_with_keyframe(path), f"{path} does not start with a keyframe"
    ends = sorted({first, len(playlist.segments) - 1})
    heard = fetch_segments(worker, audio, folder, numbers=ends) if audio is not None else []
    for path, audio_path in zip([paths[0], paths[-1]], heard):
        starts, audio_start = stream_starts(path), stream_starts(audio_path)["audio"]
        # segments are cut by decode time: the audio starts with the video's first decode
        # (a B-frame source's reorder delay before its first picture) or its first picture
        earliest = min(starts["video"], starts.get("video_dts", starts["video"]))
        assert earliest - MAX_AV_GAP_S < audio_start < starts["video"] + MAX_AV_GAP_S, \
            f"{audio_path}: audio starts at {audio_start}, video at {earliest}-{starts['video']}"
    total = sum(s.duration for s in playlist.segments[first:])
    assert abs(total - expected_s) <= SEGMENT_S, (total, expected_s)
    return paths, heard


def check_codecs(watcher, segment_path, audio_path=None):
    """The first variant's CODECS are the streams ffprobe finds in a video segment and in its
    DEFAULT audio rendition's segment, video first."""
    streams = []
    for path in [segment_path] + ([audio_path] if audio_path else []):
        found = ffprobe_json(path, "-show_entries", "stream=codec_type,codec_name,codec_tag_string,profile,level")
        streams += {json.dumps(s, sort_keys=True): s for s in found["streams"]}.values()  # (TS lists them twice)
    codecs = watcher.variant.stream_info.codecs.split(",")
    assert len(codecs) == len(streams), (codecs, streams)
    for codec, stream in zip(codecs, streams):
        assert codec_matches(codec, stream), (codec, stream)


KINDS = {name: i for i, name in enumerate(mf.SOURCES)}


@pytest.mark.parametrize("name", list(mf.SOURCES))
@pytest.mark.parametrize("remux", [False, True], ids=["transcode", "remux"])
def test_every_source_kind_conforms_and_stays_in_sync(worker, media_root, name, remux, tmp_path):
    job_id = f"conform-{KINDS[name]}-{int(remux)}"
    src = str(media_root / name)
    response = worker.post_job({"job_id": job_id, "source_path": src, "configuration": {"force_remux": remux}})
    assert response.status_code == 202, response.text
    hevc = ffprobe_json(src, "-select_streams", "v:0", "-show_entries", "stream=codec_name")["streams"][0]["codec_name"] == "hevc"
    watcher = PlaylistWatcher(worker, job_id, fmp4=remux and hevc)
    playlist = watcher.until_completed()
    paths, heard = check_segments(worker, playlist, probe_duration(src), tmp_path, audio=watcher.audio_playlist())
    check_codecs(watcher, paths[0], heard[0] if heard else None)
    check_codecs(watcher, paths[-1], heard[-1] if heard else None)
    worker.delete(job_id)


@pytest.mark.parametrize("remux, encoder", [(False, None), (True, None), (False, "libx265")],
                         ids=["transcode", "remux", "hevc-fmp4"])
def test_the_remainder_after_a_seek_conforms_and_stays_in_sync(worker, media_root, remux, encoder, tmp_path):
    job_id = f"conform-seek-{int(remux)}{encoder or ''}"
    src = str(media_root / mf.LONG)
    seek_s = mf.LONG_SECONDS - 11  # not on a keyframe of the source: a remux starts at the one before
    body = {"job_id": job_id, "source_path": src,
            "configuration": {"force_remux": remux, "bitrate_bps": 1_000_000, "encoder": encoder}}
    assert worker.post_job(body).status_code == 202
    worker.wait_state(job_id, {"RUNNING", "COMPLETED"})
    body["configuration"]["seek_time"] = f"00:09:{seek_s - 540:02d}"
    assert worker.post_job(body).status_code == 202
    watcher = PlaylistWatcher(worker, job_id, fmp4=encoder == "libx265", start_s=seek_s)
    playlist = watcher.until_completed()
    # the segment that holds the seek, and what follows it to the end of the film
    ends = [sum(s.duration for s in playlist.segments[:n + 1]) for n in range(len(playlist.segments))]
    first = next(n for n, end in enumerate(ends) if end > seek_s)
    paths, heard = check_segments(worker, playlist, probe_duration(src) - seek_s, tmp_path, first,
                                  audio=watcher.audio_playlist())
    check_codecs(watcher, paths[0], heard[0])
    worker.delete(job_id)


def test_the_playlist_is_the_whole_film_and_never_changes_while_ffmpeg_runs(worker, media_root, tmp_path):
    job_id = "conform-vod"
    src = str(media_root / mf.LONG)
    response = worker.post_job({"job_id": job_id, "source_path": src, "configuration": {"bitrate_bps": 1_000_000}})
    assert response.status_code == 202
    watcher = PlaylistWatcher(worker, job_id)
    while watcher.answers < 10:
        playlist = watcher.poll()
        time.sleep(0.02)
    assert worker.job(job_id)["state"] == "RUNNING"  # FFmpeg is far from the end: the whole film anyway
    assert abs(sum(d for _, d in watcher.segments) - probe_duration(src)) < 0.05
    check_segments(worker, playlist, SEGMENT_S * 3, tmp_path, first=len(playlist.segments) - 3)
    worker.delete(job_id)
