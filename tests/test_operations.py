"""Running as a service: stalls, idle and finished jobs, metrics, JSON logs, the shutdown bound,
the systemd unit. Real service, real FFmpeg."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import media_files as mf
from transcode_worker.health import WRITE_CHECK_PREFIX
from transcode_worker.runstate import LOCK_FILE
from worker_process import ffmpeg_slow_at, play, process_gone, wait_for

ROOT = Path(__file__).resolve().parent.parent


def start_job(w, media_root, job_id, name=mf.LONG, **configuration):
    body = {"job_id": job_id, "source_path": str(media_root / name), "configuration": configuration}
    response = w.post_job(body)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_stalled_ffmpeg_is_killed_and_the_waiting_player_answered(make_worker, media_root):
    w = make_worker(stall_timeout_s=2.0, playlist_wait_s=60.0)
    pid = start_job(w, media_root, "stall1", bitrate_bps=300_000)["pid"]
    w.wait_state("stall1", {"RUNNING"})
    os.killpg(pid, signal.SIGSTOP)  # alive, and going nowhere (a hung NFS read looks the same)
    started = time.monotonic()
    # a segment the run would make within seconds at its speed, had it not hung: the player waits
    # (three past the last on disk: within run.PATIENCE_S at any speed over 1.5x; 40 ahead needed
    # 20x, which a loaded machine's measure fell short of, and a jump's run served it)
    time.sleep(0.5)  # what it finished is put in place
    on_disk = [int(p.stem.rpartition("_")[2]) for p in (w.segment_root / "stall1").rglob("stall1_*.ts")]
    ahead = max(on_disk + [w.job("stall1")["last_segment_id"]]) + 3
    answer = requests.get(f"{w.url}/stall1_{ahead}.ts", timeout=60)
    waited = time.monotonic() - started
    assert answer.status_code == 404 and "stalled" in answer.json()["error"]
    assert waited < 30  # answered by the stall, not by the 60 s wait running out
    job = w.job("stall1")
    assert job["state"] == "FAILED" and "no progress" in job["error"]["message"]
    wait_for(lambda: process_gone(pid), 5, what="the stalled FFmpeg to be gone")
    w.delete("stall1")


def test_an_unwatched_job_is_stopped_and_removed_a_watched_one_kept(make_worker, media_root):
    w = make_worker(idle_job_timeout_s=3.0)
    watched_pid = start_job(w, media_root, "watched", bitrate_bps=300_000)["pid"]
    idle_pid = start_job(w, media_root, "idle", bitrate_bps=300_000)["pid"]
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:  # a player polling the playlist, as players do
        assert requests.get(f"{w.url}/watched.m3u8", timeout=30).status_code == 200
        time.sleep(0.5)
    assert [j["job_id"] for j in w.jobs()] == ["watched"]
    assert not (w.segment_root / "idle").exists()
    assert process_gone(idle_pid) and not process_gone(watched_pid)
    assert "no player asked for the stream" in w.log()
    w.delete("watched")


def test_a_finished_jobs_folder_goes_after_its_idle_time(make_worker, media_root):
    w = make_worker(finished_job_timeout_s=2.0)
    start_job(w, media_root, "done1", name=mf.H264, force_remux=True)
    w.wait_state("done1", {"COMPLETED"})
    assert (w.segment_root / "done1").is_dir()
    wait_for(lambda: not (w.segment_root / "done1").exists(), 10, what="the finished job's folder to go")
    assert w.jobs() == []


def metric_values(w):
    text = requests.get(w.url + "/metrics", timeout=10).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f"[{k}={v}]" for k, v in sorted(sample.labels.items()))
            values[key] = sample.value
    return values


def test_metrics_count_what_happened(make_worker, media_root):
    w = make_worker()
    before = metric_values(w)
    assert before["transcode_ffmpeg_starts_total"] == 0 and before["transcode_jobs[state=RUNNING]"] == 0
    start_job(w, media_root, "m1", name=mf.H264)
    play(w.url + "/m1.m3u8")  # FFmpeg as the player reads every segment
    w.wait_state("m1", {"COMPLETED"})
    bad = w.post_job({"job_id": "m2", "source_path": str(media_root / mf.CORRUPT)})
    assert bad.status_code == 202
    w.wait_state("m2", {"FAILED"})
    after = metric_values(w)
    assert after["transcode_ffmpeg_starts_total"] == 2
    assert after["transcode_ffmpeg_failures_total"] == 1
    assert after["transcode_jobs[state=COMPLETED]"] == 1 and after["transcode_jobs[state=FAILED]"] == 1
    assert after["transcode_segments_served_total"] >= 2
    assert after["transcode_bytes_served_total"] > 100_000
    assert after["transcode_segment_wait_seconds_count[kind=segment]"] == after["transcode_segments_served_total"]
    assert after["transcode_spool_depth"] == 0 and after["transcode_health_problems"] == 0
    assert any(k.startswith("transcode_http_request_duration_seconds_count[endpoint=jobs.submit") for k in after)
    for job_id in ("m1", "m2"):
        w.delete(job_id)


def test_json_logs_carry_the_job_id(make_worker, media_root):
    w = make_worker(log_format="json")
    start_job(w, media_root, "log1", name=mf.H264)
    w.wait_state("log1", {"COMPLETED"})
    w.delete("log1")
    lines = [line for line in w.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line, gunicorn's included, is JSON
    job_lines = [e for e in entries if "job log1" in e["message"]]
    assert len(job_lines) >= 3  # started, ended, deleted
    assert all(e["job_id"] == "log1" for e in job_lines)
    assert any(e["logger"] == "gunicorn.error" for e in entries)


def test_sigterm_is_not_held_up_by_waiting_players(make_worker, media_root, tmp_path):
    w = make_worker(playlist_wait_s=60.0, stop_grace_s=2.0, shutdown_timeout_s=12.0, speed_guard_s=0,
                    ffmpeg_path=ffmpeg_slow_at(None, tmp_path, rate=0.1))  # a tenth of real time
    pid = start_job(w, media_root, "wait1", bitrate_bps=300_000)["pid"]
    w.wait_state("wait1", {"RUNNING"})
    answers = []
    players = [threading.Thread(target=lambda: answers.append(
        requests.get(f"{w.url}/wait1_200.ts", timeout=90).status_code)) for _ in range(3)]
    for player in players:
        player.start()
    time.sleep(0.5)
    started = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    w.proc.wait(timeout=30)
    took = time.monotonic() - started
    for player in players:
        player.join(10)
    assert w.proc.returncode == 0
    assert took < 12.0  # shutdown_timeout_s, though each player would have waited 60 s
    assert answers == [503, 503, 503]
    assert process_gone(pid) or not psutil.pid_exists(pid)
    assert not (w.segment_root / "wait1").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_unit_verifies(tmp_path):
    unit = tmp_path / "transcode-worker.service"
    text = (ROOT / "conf" / "transcode-worker.service").read_text()
    # verify checks that ExecStart exists: point it at this checkout's console script
    exe = Path(sys.executable).parent / "transcode-worker"
    unit.write_text(text.replace("/opt/transcode-worker/venv/bin/transcode-worker", str(exe)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    for key in ("KillMode=mixed", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                "PrivateTmp=yes", "ProtectHome=yes", "DeviceAllow=char-drm rw"):
        assert key in text
    timeout_stop = int(text.split("TimeoutStopSec=")[1].split("s")[0])
    from transcode_worker.config import SettingsSchema
    assert timeout_stop > SettingsSchema().fields["shutdown_timeout_s"].load_default + 5


def test_the_disk_floor_refuses_jobs_and_says_why(make_worker, media_root):
    w = make_worker(min_free_disk_bytes=1 << 60)  # more than any disk: "below the floor" at once
    refused = w.post_job({"job_id": "floor1", "source_path": str(media_root / mf.H264)})
    assert refused.status_code == 503 and "below the floor" in refused.json()["error"]
    assert refused.headers["Retry-After"]
    (problem,) = requests.get(w.url + "/healthz", timeout=5).json()["problems"]
    assert "min_free_disk_bytes" in problem
    # nothing created (the health check's write probe lives for an instant)
    assert [p for p in w.segment_root.iterdir() if not p.name.startswith(WRITE_CHECK_PREFIX)] == [
        w.segment_root / LOCK_FILE]


def test_a_restart_ends_its_own_surviving_ffmpeg_and_no_other(make_worker, media_root, tmp_path):
    # An FFmpeg that outlives a SIGKILLed worker, as it would without a parent-death signal:
    # the wrapper clears the signal, then becomes FFmpeg (same pid, same start time).
    wrapper = tmp_path / "ffmpeg-surviving"
    wrapper.write_text('#!/bin/sh\nexec setpriv --pdeathsig clear -- ffmpeg "$@"\n')
    wrapper.chmod(0o755)
    unrelated = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "quiet", "-re", "-f", "lavfi", "-i",
                                  "testsrc2=size=64x64:rate=5:duration=120", "-f", "null", "-"],
                                 stdin=subprocess.DEVNULL)
    try:
        w = make_worker(ffmpeg_path=str(wrapper))
        pid = start_job(w, media_root, "surv1", bitrate_bps=300_000)["pid"]
        w.wait_state("surv1", {"RUNNING"})
        master = psutil.Process(w.proc.pid)
        holder = psutil.Process(pid).parent()
        holder.kill()  # SIGKILL the worker process, then its master: nobody cleans up
        master.kill()
        w.proc.wait(10)
        time.sleep(1)
        assert not process_gone(pid) and (w.segment_root / "surv1").is_dir()  # the leftovers

        w.start()
        wait_for(lambda: process_gone(pid), 5, what="the restarted worker to end its old FFmpeg")
        assert not (w.segment_root / "surv1").exists()
        assert unrelated.poll() is None  # an FFmpeg the worker did not start is left alone
        assert "left running by a previous run" in w.log()
    finally:
        unrelated.kill()
        unrelated.wait()


def test_a_sighup_rereads_the_configuration_and_the_service_stays_up(make_worker, media_root):
    """gunicorn's reload: a new worker process on the configuration read anew; the old one stops
    its jobs as in a restart and hands over its folders; the master and its socket stay."""
    w = make_worker()
    pid = start_job(w, media_root, "hup1", bitrate_bps=300_000)["pid"]
    w.wait_state("hup1", {"RUNNING"})
    old_app = psutil.Process(pid).parent().pid

    def health():
        try:
            return requests.get(w.url + "/healthz", timeout=2).json()
        except (requests.ConnectionError, ValueError):
            return None

    w.write_config(max_concurrent_jobs=3)
    w.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: (h := health()) and h["max_concurrent_jobs"] == 3, 40, what="the new configuration")
    assert w.proc.poll() is None and process_gone(pid) and process_gone(old_app)
    assert w.jobs() == []  # stopped with the old process: the orchestrator re-queues them
    start_job(w, media_root, "hup2", bitrate_bps=300_000)

    w.write_config(max_concurrent_jobs=0)  # now wrong
    new_app = psutil.Process(w.ffmpeg_pids()[0]).parent().pid
    w.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration is not reloaded" in w.log(), 20, what="the refusal in the log")
    wait_for(lambda: (h := health()) and h["max_concurrent_jobs"] == 3 and process_gone(new_app), 40,
             what="a worker process on the configuration that was running")
    assert w.proc.poll() is None


def test_throttling_pauses_ffmpeg_ahead_of_the_player_and_resumes_it(make_worker, media_root):
    w = make_worker(throttle_lead_s=8.0, stop_grace_s=3.0)
    pid = start_job(w, media_root, "thr1", bitrate_bps=300_000)["pid"]
    assert requests.get(f"{w.url}/thr1_0.ts", timeout=30).status_code == 200  # the player is at the start
    wait_for(lambda: w.job("thr1")["throttled"], 30, what="the job to be paused")
    assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    held = w.job("thr1")["last_segment_id"]
    time.sleep(2)
    assert w.job("thr1")["last_segment_id"] == held  # paused: no CPU spent, nothing written

    assert requests.get(f"{w.url}/thr1_{held}.ts", timeout=30).status_code == 200  # the player caught up
    assert not w.job("thr1")["throttled"]
    assert psutil.Process(pid).status() != psutil.STATUS_STOPPED
    wait_for(lambda: w.job("thr1")["last_segment_id"] > held, 30, what="FFmpeg to write again")
    wait_for(lambda: w.job("thr1")["throttled"], 30, what="the job to be paused again")

    started = time.monotonic()
    assert w.delete("thr1").status_code == 200  # SIGTERM reaches a paused FFmpeg (it is continued)
    assert time.monotonic() - started < 3.0
    assert process_gone(pid) or not psutil.pid_exists(pid)
