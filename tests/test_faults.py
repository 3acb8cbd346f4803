"""Faults the worker must survive (issue 27), each injected into the real service: what a user sees
is an answer within its limits, never a 500, no FFmpeg without a job, no job lost or invented."""
import os
import resource
import shutil
import socket
import time

import pytest
import requests

import kernel_faults
import media_files as mf
from transcode_worker.api.hls import _client_gone
from transcode_worker.run import PATIENCE_S
from worker_process import ffmpeg_slow_at, wait_for

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
    wait_for(lambda: worker.ffmpeg_pids() == [], 5, what="the killed run reaped")
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
    assert len(worker.video_ffmpeg_pids()) == 1 and worker.job("ended")["state"] == "COMPLETED"
    assert worker.delete("other").status_code == 200
    assert requests.get(f"{worker.url}/ended_0.ts", timeout=10).status_code == 200  # a slot again
    assert worker.delete("ended").status_code == 200


def _frozen_next_run(worker, first, freeze):
    """The pid of a video run of the worker other than `first`, put in the freezer with it (its
    sprint's or the one after: whichever runs now), else None."""
    for pid in set(worker.video_ffmpeg_pids()) - {first}:
        try:
            freeze(pid)
            wait_for(lambda: kernel_faults.state_of(pid) == "D", 2, interval=0.01, what=f"FFmpeg {pid} frozen")
        except (OSError, AssertionError):  # it ended meanwhile (a sprint makes one segment)
            continue
        return pid
    return None


def test_an_ffmpeg_that_sigkill_does_not_end_holds_its_slot_and_no_answer_waits(make_worker, media_root):
    """FFmpeg in uninterruptible sleep (the cgroup freezer; a hung NFS read does this): a seek and a
    DELETE answer at once, never 500 (before: TimeoutExpired escaped after 10 s, under the lock every
    other request waits on); a player's jump starts no third FFmpeg while the first will not end
    (503, retry); the stuck FFmpeg keeps its slot and is reported in /healthz until it ends; then
    its slot is free again and the deleted job's folder goes."""
    worker = make_worker(max_concurrent_jobs=1, stop_grace_s=1.0)
    assert worker.post_job({"job_id": "hung", "source_path": str(media_root / mf.LONG)}).status_code == 202
    worker.wait_state("hung", {"RUNNING"})
    first = worker.job("hung")["pid"]
    with kernel_faults.frozen(first) as freeze:
        wait_for(lambda: kernel_faults.state_of(first) == "D", 5, what="FFmpeg frozen")
        time.sleep(PATIENCE_S + 0.5)  # it has not moved for a while: it will not get to the seek
        started = time.monotonic()
        seek = worker.post_job({"job_id": "hung", "source_path": str(media_root / mf.LONG),
                                "configuration": {"seek_time": "00:05:00"}})
        assert seek.status_code in (200, 202) and time.monotonic() - started < 3, (seek.status_code, seek.text)
        # the share hangs for every run: a player's jump must not pile up stuck FFmpeg. The seek's
        # run is caught as it runs (this small film's rest takes it a second and a half at 200x)
        second = wait_for(lambda: _frozen_next_run(worker, first, freeze), 30, interval=0.01, what="the next run frozen")
        assert set(worker.video_ffmpeg_pids()) == {first, second}
        # (the first counts as stuck once SIGKILL has not ended it for REAP_WAIT_S)
        wait_for(lambda: requests.get(f"{worker.url}/healthz", timeout=5).json()["stuck_ffmpeg"], 10,
                 what="the first FFmpeg counted stuck")
        # a segment neither run made: past where the first was frozen, before the seek's run began
        jump = requests.get(f"{worker.url}/hung_120.ts", timeout=30)
        assert jump.status_code == 503 and "has not ended after SIGKILL" in jump.text, (jump.status_code, jump.text)
        assert jump.headers.get("Retry-After") and set(worker.video_ffmpeg_pids()) == {first, second}
        started = time.monotonic()
        assert worker.delete("hung").status_code == 200
        assert time.monotonic() - started < 1.0 + 5 + 2  # the grace, the reap's wait, and no more
        assert requests.get(f"{worker.url}/v1/jobs/hung", timeout=5).status_code == 404
        health = wait_for(lambda: len((h := requests.get(f"{worker.url}/healthz", timeout=5).json())["stuck_ffmpeg"]) == 2
                          and h, 10, what="both stuck FFmpeg reported")
        assert all("has not ended after SIGKILL" in line for line in health["stuck_ffmpeg"]), health
        full = worker.post_job({"job_id": "next", "source_path": str(media_root / mf.H264)})
        assert full.status_code == 503 and "at capacity" in full.text, full.text
        assert (worker.segment_root / "hung").exists()
    wait_for(lambda: worker.ffmpeg_pids() == [], 10, what="the thawed FFmpeg reaped")
    wait_for(lambda: requests.get(f"{worker.url}/healthz", timeout=5).json()["stuck_ffmpeg"] == [], 5,
             what="/healthz clear")
    wait_for(lambda: not (worker.segment_root / "hung").exists(), 5, what="the deleted job's folder removed")
    assert worker.post_job({"job_id": "next", "source_path": str(media_root / mf.H264)}).status_code == 202
    worker.wait_state("next", {"RUNNING", "COMPLETED"})
    assert worker.delete("next").status_code == 200


def test_a_waiting_player_on_a_descriptor_above_1024_is_not_taken_for_gone():
    """A worker with many connections (front "none") serves sockets numbered above 1024, where
    select() fails: the check of whether a waiting player has gone called every such player
    gone (their waits ended at once). Now it asks the socket itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"needs descriptors above 2000 (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    player, server = socket.socketpair()
    high = socket.socket(fileno=os.dup2(server.fileno(), 2000))
    try:
        assert not _client_gone({"gunicorn.socket": high})
        player.sendall(b"GET /next HTTP/1.1\r\n")  # a pipelined request is not a close
        assert not _client_gone({"gunicorn.socket": high})
        player.close()
        high.recv(100)
        assert _client_gone({"gunicorn.socket": high})
    finally:
        for sock in (player, server, high):
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_run_whose_segment_list_cannot_be_read_for_a_moment_goes_on(make_worker, media_root, tmp_path):
    """The run's list of finished segments cannot be opened for a moment (a symlink loop in its
    place: ELOOP; a flaky share gives EIO or ESTALE). Before, the OSError killed the thread that
    follows FFmpeg: the job stayed RUNNING forever with no segment made. Now the list is read
    again at the next report, and every segment gets in place."""
    worker = make_worker(ffmpeg_path=ffmpeg_slow_at(None, tmp_path, rate=1.0), speed_guard_s=0)
    assert worker.post_job({"job_id": "flaky", "source_path": str(media_root / mf.LONG)}).status_code == 202
    worker.wait_state("flaky", {"RUNNING"})
    # the video's run: the first started (its DEFAULT audio rendition's run comes right after it)
    staging = min((worker.segment_root / "flaky").glob("flaky.run*"), key=lambda p: int(p.name.rpartition("-")[2]))
    listed = staging / "segments.csv"
    listed.rename(staging / "aside")
    listed.symlink_to("segments.csv")  # itself: ELOOP
    made = worker.job("flaky")["segments_made"]
    time.sleep(3)
    listed.unlink()
    (staging / "aside").rename(listed)
    wait_for(lambda: worker.job("flaky")["segments_made"] >= made + 2, 20, what="segments in place again")
    assert worker.job("flaky")["state"] == "RUNNING"
    assert "list of segments cannot be read" in worker.log()
    assert worker.delete("flaky").status_code == 200
