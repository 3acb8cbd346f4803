"""Every playlist the worker serves keeps the RFC 8216 rules players rely on, and every source
kind comes out with audio and video in step and the length it should have.

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
    """{"video": first pts in seconds, "audio": ...} of one segment."""
    streams = ffprobe_json(url, "-show_entries", "stream=codec_type,start_time")["streams"]
    return {s["codec_type"]: float(s["start_time"]) for s in streams if "start_time" in s}


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
    media playlist it names, polled, checking each answer against the rules a growing playlist
    must keep, and against the job's state around the request."""

    def __init__(self, worker, job_id, fmp4=False):
        self.worker, self.job_id, self.fmp4 = worker, job_id, fmp4
        self.url = f"{worker.url}/{job_id}.m3u8"
        self.media_url = None
        self.variant = None  # the multivariant playlist's one variant
        self.target = self.media_sequence = None
        self.segments = []  # (uri, duration) of the latest answer
        self.answers = 0

    def poll(self):
        """One request; returns the parsed media playlist (None before it is playable)."""
        before = self.worker.job(self.job_id)["state"]
        response = requests.get(self.media_url or self.url, timeout=30)
        after = self.worker.job(self.job_id)["state"]
        if response.status_code != 200:
            assert before == "STARTING" and response.status_code == 503, (response.status_code, response.text)
            return None
        if self.media_url is None:
            self.check_multivariant(m3u8.loads(response.text, uri=self.url))
            return self.poll()
        playlist = m3u8.loads(response.text)
        self.check(playlist, before, after)
        self.answers += 1
        return playlist

    def check_multivariant(self, multivariant):
        assert multivariant.is_variant and len(multivariant.playlists) == 1
        self.variant = multivariant.playlists[0]
        info = self.variant.stream_info
        assert info.bandwidth >= info.average_bandwidth > 0
        assert info.codecs and info.frame_rate > 0 and info.video_range in ("SDR", "PQ", "HLG")
        assert info.resolution and all(info.resolution)
        self.media_url = self.variant.absolute_uri
        assert self.media_url == f"{self.worker.url}/{self.job_id}.media.m3u8"

    def check(self, playlist, state_before, state_after):
        assert playlist.playlist_type == "event"
        assert playlist.is_independent_segments
        assert playlist.start is not None and playlist.start.time_offset == 0
        assert playlist.segments, "a playlist is served only once it lists a segment"
        # EXT-X-ENDLIST when and only when the job completed
        if playlist.is_endlist:
            assert state_after == "COMPLETED"
        else:
            assert state_before != "COMPLETED"
        # one target duration from the first answer to the last, at least every rounded EXTINF
        if self.target is None:
            self.target, self.media_sequence = playlist.target_duration, playlist.media_sequence
        assert playlist.target_duration == self.target
        assert all(round(s.duration) <= self.target for s in playlist.segments), \
            [s.duration for s in playlist.segments]
        # the media sequence never moves, and segment n is the n-th after it
        assert playlist.media_sequence == self.media_sequence
        uris = [s.uri for s in playlist.segments]
        extension = "m4s" if self.fmp4 else "ts"
        assert uris == [f"{self.job_id}_{self.media_sequence + i}.{extension}" for i in range(len(uris))]
        # fMP4: one init segment, named after the run's first segment; MPEG-TS: none
        maps = {s.init_section.uri for s in playlist.segments if s.init_section}
        assert maps == ({f"{self.job_id}_init_{self.media_sequence}.mp4"} if self.fmp4 else set())
        # a segment once listed keeps its place and duration: the playlist only grows
        segments = [(s.uri, s.duration) for s in playlist.segments]
        assert segments[:len(self.segments)] == self.segments
        self.segments = segments

    def until_completed(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            playlist = self.poll()
            if playlist is not None and playlist.is_endlist:
                return playlist
            time.sleep(0.05)
        raise AssertionError(f"{self.url} did not complete in {timeout}s")


def fetch_segments(worker, playlist, folder):
    """Each listed segment downloaded into `folder` as a file ffprobe can read alone (an fMP4
    one after its init segment, as a player joins them); returns the paths."""
    init = b""
    if playlist.segments[0].init_section:
        init = requests.get(f"{worker.url}/{playlist.segments[0].init_section.uri}", timeout=30).content
    paths = []
    for segment in playlist.segments:
        url = f"{worker.url}/{segment.uri}"
        assert requests.head(url, timeout=30).status_code == 200, url
        path = folder / segment.uri
        path.write_bytes(init + requests.get(url, timeout=30).content)
        paths.append(str(path))
    return paths


def check_segments(worker, playlist, expected_s, folder):
    """Every listed segment is fetchable and starts with a keyframe; the first and last have
    audio and video starting together; the durations add up to the expected length."""
    paths = fetch_segments(worker, playlist, folder)
    for path in paths:
        assert starts_with_keyframe(path), f"{path} does not start with a keyframe"
    for path in {paths[0], paths[-1]}:
        starts = stream_starts(path)
        if "audio" in starts:
            gap = abs(starts["audio"] - starts["video"])
            assert gap < MAX_AV_GAP_S, f"{path}: audio and video start {gap * 1000:.0f} ms apart"
    total = sum(s.duration for s in playlist.segments)
    assert abs(total - expected_s) <= SEGMENT_S, (total, expected_s)
    return paths


def check_codecs(watcher, segment_path):
    """The variant's CODECS are the streams ffprobe finds in a segment, video first."""
    streams = ffprobe_json(segment_path, "-show_entries",
                           "stream=codec_type,codec_name,codec_tag_string,profile,level")["streams"]
    codecs = watcher.variant.stream_info.codecs.split(",")
    assert len(codecs) == len(streams), (codecs, streams)
    for codec, stream in zip(codecs, sorted(streams, key=lambda s: s["codec_type"] != "video")):
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
    paths = check_segments(worker, playlist, probe_duration(src), tmp_path)
    check_codecs(watcher, paths[0])
    check_codecs(watcher, paths[-1])
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
    watcher = PlaylistWatcher(worker, job_id, fmp4=encoder == "libx265")
    playlist = watcher.until_completed()
    assert watcher.media_sequence > 0, "the segments after a seek take new numbers"
    paths = check_segments(worker, playlist, probe_duration(src) - seek_s, tmp_path)
    check_codecs(watcher, paths[0])
    worker.delete(job_id)


def test_a_growing_playlist_keeps_the_rules_at_every_poll(worker, media_root, tmp_path):
    job_id = "conform-grow"
    src = str(media_root / mf.LONG)
    response = worker.post_job({"job_id": job_id, "source_path": src, "configuration": {"bitrate_bps": 1_000_000}})
    assert response.status_code == 202
    watcher = PlaylistWatcher(worker, job_id)
    while len(watcher.segments) < 10:
        playlist = watcher.poll()
        assert playlist is None or not playlist.is_endlist
        time.sleep(0.02)
    assert watcher.answers >= 3 and watcher.target == 2
    assert worker.job(job_id)["state"] == "RUNNING"
    check_segments(worker, playlist, SEGMENT_S * len(playlist.segments), tmp_path)
    worker.delete(job_id)
