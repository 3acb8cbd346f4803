"""The whole system on loopback: the reference orchestrator and two real workers (short intervals)."""
import json
import os
import re
import signal
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

import media_files as mf
from orchestrator_process import OrchestratorProcess
from worker_process import ProcessWatch, first_frame_luma, first_segment_url, play, process_gone, wait_for

def test_play_redirects_and_ffmpeg_plays_through_the_redirect(cluster, media_root):
    orch, workers = cluster()
    answer = requests.get(orch.play_url(str(media_root / mf.H264)), allow_redirects=False, timeout=60)
    assert answer.status_code == 302
    job = orch.job(answer.headers["X-Job-Id"])
    assert answer.headers["Location"] == job["playlist_url"] == f"{orch.url}/streams/{job['job_id']}.m3u8"
    assert job["worker_playlist_url"].startswith(workers[job["worker_id"]].url)
    # FFmpeg follows the orchestrator's redirect like a TV would, and decodes the whole movie
    code, seconds, err = play(orch.play_url(str(media_root / mf.H264)))
    assert code == 0, err
    assert abs(seconds - 6.0) < 2.5
    assert requests.get(orch.play_url("/nowhere/x.mkv"), timeout=60).status_code == 422
    # the token is set: an unsigned or altered link starts nothing
    assert requests.get(orch.url + "/play", params={"path": str(media_root / mf.H264)}, timeout=60).status_code == 403
    jobs = len(orch.get("/v1/jobs").json()["jobs"])
    signed = orch.play_url(str(media_root / mf.H264))
    for altered in (signed.replace(".mp4", ".mkv"), signed + "&seek_time=00:00:01"):
        assert requests.get(altered, timeout=60).status_code == 403
    assert len(orch.get("/v1/jobs").json()["jobs"]) == jobs


def test_a_killed_worker_is_replaced_and_the_stream_continues(cluster, media_root):
    orch, workers = cluster()
    created = orch.post("/v1/play", {"source_path": str(media_root / mf.LONG),
                                     "configuration": {"bitrate_bps": 300_000, "audio_language": "en"}})
    assert created.status_code == 201, created.text
    job_id, holder_id = created.json()["job_id"], created.json()["worker_id"]
    # far enough into the ramp that its brightness tells positions apart
    wait_for(lambda: (orch.job(job_id)["position_s"] or 0) >= 90, 90, what="progress reported by heartbeats")
    known = orch.job(job_id)["position_s"]
    holder = workers[holder_id]
    ffmpeg_pid = holder.job(job_id)["pid"]
    gunicorn_worker = psutil.Process(ffmpeg_pid).parent()
    psutil.Process(holder.proc.pid).kill()  # the whole worker dies at once: no death note
    gunicorn_worker.kill()
    wait_for(lambda: process_gone(ffmpeg_pid), 5, what="its FFmpeg to die with it")

    other = next(wid for wid in workers if wid != holder_id)
    moved = wait_for(lambda: (j := orch.job(job_id))["worker_id"] == other and j, 30, what="the re-queue")
    assert moved["requeues"] == 1
    seek = moved["configuration"]["seek_time"]
    h, m, s = seek.split(":")
    seek_s = int(h) * 3600 + int(m) * 60 + float(s)
    assert known - 0.001 <= seek_s <= known + 15  # from its last known progress (ms in seek_time)
    assert orch.workers()[holder_id]["status"] == "OFFLINE"
    # the viewer's audio track goes with the job
    assert workers[other].job(job_id)["tracks"]["audio"]["chosen_by"] == "audio_language"

    again = requests.get(orch.play_url(job_id=job_id), allow_redirects=False, timeout=30)
    assert again.status_code == 302 and again.headers["Location"] == moved["playlist_url"]
    assert orch.job(job_id)["worker_playlist_url"].startswith(workers[other].url)
    luma = first_frame_luma(first_segment_url(again.headers["Location"]))
    expected = first_frame_luma(str(media_root / mf.LONG), at=seek_s)
    assert abs(luma - expected) < 4  # the picture continues where the old worker was
    assert abs(luma - first_frame_luma(str(media_root / mf.LONG), at=0)) > 20  # not from the start


def test_sigterm_takes_a_worker_off_the_pool_at_once(cluster):
    orch, workers = cluster(offline_after_s=120.0)  # only the death note can explain OFFLINE
    workers["w2"].proc.send_signal(signal.SIGTERM)
    workers["w2"].proc.wait(20)
    w2 = orch.workers()["w2"]
    assert w2["status"] == "OFFLINE" and "SHUTDOWN" in w2["reason"]
    assert orch.workers()["w1"]["status"] != "OFFLINE"


def test_orchestrator_down_then_up_sees_everything_after_the_replay(cluster, media_root):
    orch, workers = cluster()
    created = orch.post("/v1/play", {"source_path": str(media_root / mf.LONG),
                                     "configuration": {"bitrate_bps": 300_000, "seek_time": "00:09:45"}})
    job_id, holder_id = created.json()["job_id"], created.json()["worker_id"]
    orch.stop()
    holder = workers[holder_id]
    holder.wait_state(job_id, {"COMPLETED"}, timeout=60)  # the job went on without the orchestrator
    wait_for(lambda: len(list((holder.workdir / "spool" / "outbox").glob("*.json"))) >= 2, 20,
             what="heartbeats spooled")
    orch.start()
    job = wait_for(lambda: (j := orch.job(job_id))["state"] == "COMPLETED" and j, 30, what="the replayed history")
    assert job["progress"] == 100.0 and job["worker_id"] == holder_id and job["requeues"] == 0
    assert {w["status"] for w in orch.workers().values()} <= {"IDLE", "BUSY", "STRESSED"}
    assert re.match(r"^[0-9a-f]{16}$", job_id)


def timed_play(orch, path, into):
    started = time.monotonic()
    try:
        answer = requests.get(orch.play_url(path), allow_redirects=False, timeout=15)
        into[path] = (answer.status_code, time.monotonic() - started, answer.headers.get("X-Job-Id"), answer.text)
    except requests.RequestException as exc:
        into[path] = (None, time.monotonic() - started, None, str(exc))


def test_a_device_or_a_fifo_is_refused_at_once_and_holds_up_no_other_play(cluster, media_root):
    orch, workers = cluster()
    folder = Path(tempfile.mkdtemp(dir=media_root, prefix="fifo-"))  # inside the workers' media root
    fifo = folder / "film.mkv"
    os.mkfifo(fifo)  # opening it to read blocks until a writer comes: never
    real = str(media_root / mf.H264)
    try:
        with ProcessWatch(orch) as watch:
            for bad in ("/dev/ptmx", "/dev/./ptmx", str(fifo)):
                answers = {}
                refused = threading.Thread(target=timed_play, args=(orch, bad, answers), name="bad-play")
                refused.start()  # the viewer beside it asks at the same time
                timed_play(orch, real, answers)
                refused.join(20)
                status, took, _, text = answers[bad]
                assert status in (404, 422) and took < 10, (bad, answers[bad])
                assert json.loads(text)["error"]
                status, took, job_id, text = answers[real]
                assert status == 302 and took < 10, (bad, answers[real])
                orch.delete(f"/v1/jobs/{job_id}")
        assert [job["source_path"] for job in orch.get("/v1/jobs").json()["jobs"]] == []
        probes = [argv for argv in watch.seen.values() if any("ffprobe" in arg for arg in argv)]
        assert probes == [], f"the orchestrator ran {probes}"
    finally:
        fifo.unlink()
        folder.rmdir()


def test_a_web_page_cannot_start_or_seek_jobs_but_a_program_can(cluster, media_root):
    orch, workers = cluster(token="")  # no token: what stops a page is the rule itself
    source = str(media_root / mf.H264)
    page = {"Origin": "http://evil.example", "Content-Type": "text/plain;charset=UTF-8"}
    forged = requests.post(orch.url + "/v1/play", data=json.dumps({"source_path": source}), headers=page, timeout=30)
    assert forged.status_code == 403 and forged.json()["error"]
    form = requests.post(orch.url + "/v1/play", data={"source_path": source},
                         headers={"Origin": "http://evil.example"}, timeout=30)
    assert form.status_code == 403
    preflight = requests.options(orch.url + "/v1/play", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"}, timeout=30)
    assert preflight.status_code == 403
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-allow")]
    assert requests.post(orch.url + "/v1/play", data=json.dumps({"source_path": source}),
                         headers={"Content-Type": "text/plain"}, timeout=30).status_code == 415
    assert orch.get("/v1/jobs").json()["jobs"] == [] and all(w.jobs() == [] for w in workers.values())

    created = orch.post("/v1/play", {"source_path": source})  # a program: JSON, no Origin
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]
    seek = requests.post(f"{orch.url}/v1/jobs/{job_id}/seek", data='{"seek_time": "00:00:04"}', headers=page,
                         timeout=30)
    assert seek.status_code == 403
    assert orch.job(job_id)["configuration"]["seek_time"] == "00:00:00"
    assert orch.post(f"/v1/jobs/{job_id}/seek", {"seek_time": "00:00:04"}).status_code == 200
    assert orch.job(job_id)["configuration"]["seek_time"] == "00:00:04"
    # a player's page may still be sent to /play
    play = requests.get(orch.url + "/play", params={"path": source}, headers={"Origin": "http://tv.example"},
                        allow_redirects=False, timeout=30)
    assert play.status_code == 302 and play.headers["Access-Control-Allow-Origin"] == "*"
