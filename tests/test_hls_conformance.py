"""Every playlist the worker serves keeps the RFC 8216 rules players rely on, and every source
kind comes out with audio and video in step and the length it should have.

The playlists are parsed by `m3u8` (PyPI); the segments are read back over HTTP by ffprobe.
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


class PlaylistWatcher:
    """Reads a job's playlist the way a player polls it, checking each answer against the rules
    a growing playlist must keep, and against the job's state around the request."""

    def __init__(self, worker, job_id):
        self.worker, self.job_id = worker, job_id
        self.url = f"{worker.url}/{job_id}.m3u8"
        self.target = self.media_sequence = None
        self.segments = []  # (uri, duration) of the latest answer
        self.answers = 0

    def poll(self):
        """One request; returns the parsed playlist (None before it is playable)."""
        before = self.worker.job(self.job_id)["state"]
        response = requests.get(self.url, timeout=30)
        after = self.worker.job(self.job_id)["state"]
        if response.status_code != 200:
            assert before == "STARTING" and response.status_code == 503, (response.status_code, response.text)
            return None
        playlist = m3u8.loads(response.text)
        self.check(playlist, before, after)
        self.answers += 1
        return playlist

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
        assert uris == [f"{self.job_id}_{self.media_sequence + i}.ts" for i in range(len(uris))]
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


def check_segments(worker, playlist, expected_s):
    """Every listed segment is fetchable and starts with a keyframe; the first and last have
    audio and video starting together; the durations add up to the expected length."""
    urls = [f"{worker.url}/{s.uri}" for s in playlist.segments]
    for url in urls:
        assert requests.head(url, timeout=30).status_code == 200, url
        assert starts_with_keyframe(url), f"{url} does not start with a keyframe"
    for url in {urls[0], urls[-1]}:
        starts = stream_starts(url)
        if "audio" in starts:
            gap = abs(starts["audio"] - starts["video"])
            assert gap < MAX_AV_GAP_S, f"{url}: audio and video start {gap * 1000:.0f} ms apart"
    total = sum(s.duration for s in playlist.segments)
    assert abs(total - expected_s) <= SEGMENT_S, (total, expected_s)


KINDS = {name: i for i, name in enumerate(mf.SOURCES)}


@pytest.mark.parametrize("name", list(mf.SOURCES))
@pytest.mark.parametrize("remux", [False, True], ids=["transcode", "remux"])
def test_every_source_kind_conforms_and_stays_in_sync(worker, media_root, name, remux):
    job_id = f"conform-{KINDS[name]}-{int(remux)}"
    src = str(media_root / name)
    response = worker.post_job({"job_id": job_id, "source_path": src, "configuration": {"force_remux": remux}})
    assert response.status_code == 202, response.text
    watcher = PlaylistWatcher(worker, job_id)
    playlist = watcher.until_completed()
    check_segments(worker, playlist, probe_duration(src))
    worker.delete(job_id)


@pytest.mark.parametrize("remux", [False, True], ids=["transcode", "remux"])
def test_the_remainder_after_a_seek_conforms_and_stays_in_sync(worker, media_root, remux):
    job_id = f"conform-seek-{int(remux)}"
    src = str(media_root / mf.LONG)
    seek_s = mf.LONG_SECONDS - 11  # not on a keyframe of the source: a remux starts at the one before
    body = {"job_id": job_id, "source_path": src,
            "configuration": {"force_remux": remux, "bitrate_bps": 1_000_000}}
    assert worker.post_job(body).status_code == 202
    worker.wait_state(job_id, {"RUNNING", "COMPLETED"})
    body["configuration"]["seek_time"] = f"00:09:{seek_s - 540:02d}"
    assert worker.post_job(body).status_code == 202
    watcher = PlaylistWatcher(worker, job_id)
    playlist = watcher.until_completed()
    assert watcher.media_sequence > 0, "the segments after a seek take new numbers"
    check_segments(worker, playlist, probe_duration(src) - seek_s)
    worker.delete(job_id)


def test_a_growing_playlist_keeps_the_rules_at_every_poll(worker, media_root):
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
    check_segments(worker, playlist, expected_s=SEGMENT_S * len(playlist.segments))
    worker.delete(job_id)
