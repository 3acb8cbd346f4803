"""Faults the worker must survive (issue 27), each injected into the real service: what a user sees
is an answer within its limits, never a 500, no FFmpeg without a job, no job lost or invented."""
import shutil
import time

import pytest
import requests

import media_files as mf
from worker_process import ffmpeg_slow_at

pytestmark = pytest.mark.integration


def test_a_run_whose_files_cannot_be_made_fails_the_job_with_the_reason(make_worker, media_root, tmp_path):
    """A burned-in film whose extracted subtitles vanish (a NAS outage pruned the spool) while it
    plays: the player's jump needs a new run, which cannot draw them. The job becomes FAILED with
    the reason at once, the waiting player hears it at once, no FFmpeg is left; before, the old run
    was killed and the job stayed superseded with no run, players waiting 20 s for each 503."""
    worker = make_worker(ffmpeg_path=ffmpeg_slow_at(None, tmp_path, rate=0.5), speed_guard_s=0)
    body = {"job_id": "burn", "source_path": str(media_root / mf.SUBTITLED),
            "configuration": {"subtitle_stream": 0, "burn_subtitles": True, "bitrate_bps": 500_000}}
    assert worker.post_job(body).status_code == 202
    worker.wait_state("burn", {"RUNNING"})
    shutil.rmtree(worker.workdir / "spool" / "subtitles")
    last = requests.get(f"{worker.url}/burn.media.m3u8", timeout=10).text.count("#EXTINF") - 1
    answer = requests.get(f"{worker.url}/burn_{last}.ts", timeout=10)
    assert answer.status_code == 404 and "cannot start the run" in answer.text, answer.text
    job = worker.job("burn")
    assert job["state"] == "FAILED" and "cannot start the run" in job["error"]["message"], job
    assert worker.ffmpeg_pids() == []
    assert worker.delete("burn").status_code == 200


def test_a_job_nginx_cannot_be_told_of_starts_no_ffmpeg(make_worker, media_root, tmp_path):
    """The front's link to a job's folder cannot be written (here its folder is gone, a file in
    its place; on a full spool_dir it is ENOSPC). Before, FFmpeg had been spawned first: the POST
    answered 500 and FFmpeg ran on with no job (DELETE said 404). Now nothing starts: 503 with
    the reason, no FFmpeg, no job, no folder."""
    worker = make_worker()
    links = worker.workdir / "spool" / "front" / "jobs"
    shutil.rmtree(links)
    links.write_text("not a folder")
    try:
        answer = worker.post_job({"job_id": "unseen", "source_path": str(media_root / mf.H264)})
        assert answer.status_code == 503 and "cannot start the run" in answer.json()["error"], answer.text
        assert answer.headers.get("Retry-After")
        assert worker.jobs() == [] and worker.ffmpeg_pids() == []
        assert not (worker.segment_root / "unseen").exists()
    finally:
        links.unlink()
        links.mkdir()


def test_a_subtitle_read_out_that_fails_once_is_tried_again(make_worker, media_root):
    """The subtitle cache's folder cannot be written (a file in its place; a full spool_dir does
    the same): a burned-in job is refused at once with the reason, and once the folder is back the
    next command reads them out. Before, the read-out's thread died before saying so: every job
    of that film waited 20 s for a 503 until the worker restarted."""
    worker = make_worker()
    cache = worker.workdir / "spool" / "subtitles"
    shutil.rmtree(cache, ignore_errors=True)
    cache.write_text("not a folder")
    body = {"job_id": "subs", "source_path": str(media_root / mf.SUBTITLED),
            "configuration": {"subtitle_stream": 0, "burn_subtitles": True}}
    started = time.monotonic()
    answer = worker.post_job(body)
    assert time.monotonic() - started < 10
    assert answer.status_code == 422 and "cannot extract the subtitles" in answer.text, answer.text
    assert worker.jobs() == [] and worker.ffmpeg_pids() == []
    cache.unlink()
    cache.mkdir()
    assert worker.post_job(body).status_code == 202
    worker.wait_state("subs", {"RUNNING", "COMPLETED"})
    assert worker.delete("subs").status_code == 200


def test_a_player_of_an_ended_job_starts_no_ffmpeg_past_capacity(make_worker, media_root):
    """One slot: a job that began at a seek has made the rest of its film and ended, another job
    has the slot; a player of the first asks for a segment before its seek. No run starts past
    max_concurrent_jobs (before, players started FFmpeg past it): the player is told to retry."""
    worker = make_worker(max_concurrent_jobs=1, playlist_wait_s=3.0)
    ended = {"job_id": "ended", "source_path": str(media_root / mf.H264), "configuration": {"seek_time": "00:00:04"}}
    assert worker.post_job(ended).status_code == 202
    worker.wait_state("ended", {"COMPLETED"})
    assert worker.post_job({"job_id": "other", "source_path": str(media_root / mf.LONG)}).status_code == 202
    worker.wait_state("other", {"RUNNING"})
    answer = requests.get(f"{worker.url}/ended_0.ts", timeout=10)
    assert answer.status_code == 503 and answer.headers.get("Retry-After"), answer.status_code
    assert len(worker.ffmpeg_pids()) == 1 and worker.job("ended")["state"] == "COMPLETED"
    assert worker.delete("other").status_code == 200
    assert requests.get(f"{worker.url}/ended_0.ts", timeout=10).status_code == 200  # a slot again
    assert worker.delete("ended").status_code == 200
