"""nginx in front (front = "nginx"): every file kind served through it with the headers players
get, the worker's bookkeeping kept; slow clients held by nginx; a killed nginx started again;
nginx's workers never root (issue 25, hole 6), and still reaching all they serve."""
import grp
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from contextlib import contextmanager

import psutil
import pytest
import requests

import kernel_faults
import media_files as mf
from worker_process import SlowClients, free_port, open_to_others, play, process_gone, wait_for

pytestmark = pytest.mark.integration
HEVC = "hevc 10bit ac3 5.1 ñandú.mkv"


def nginx_processes(worker):
    return [p for p in worker.descendants() if p.name() == "nginx"]


def nginx_workers(worker):
    """nginx's worker processes: the children of its master (the service's child)."""
    [master] = [p for p in nginx_processes(worker) if p.ppid() == worker.proc.pid]
    return master, master.children()


@contextmanager
def umask(mask):
    """The tests' umask for a while: what a service started meanwhile inherits."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def answers(url):
    """True when `url` answers 200 (False while nothing listens: a new nginx not bound yet)."""
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False


def test_every_file_kind_goes_through_the_front_with_its_headers(make_worker, media_root):
    worker = make_worker(front="nginx")
    assert nginx_processes(worker), "nginx faces the network"
    for job_id, name, remux in (("fts", mf.H264, False), ("fm4", HEVC, True)):
        assert worker.post_job({"job_id": job_id, "source_path": str(media_root / name),
                                "configuration": {"force_remux": remux}}).status_code == 202
        worker.wait_state(job_id, {"COMPLETED"})
        code, seconds, err = play(f"{worker.url}/{job_id}.m3u8")
        assert code == 0 and seconds > 4, err
    before = worker.segments_served()
    for name, kind in (("fts_0.ts", "video/mp2t"), ("fm4_0.m4s", "video/mp4"), ("fm4_init_0.mp4", "video/mp4")):
        whole = requests.get(f"{worker.url}/{name}", timeout=10)
        assert whole.status_code == 200 and whole.headers["Content-Type"] == kind, name
        assert whole.headers["Cache-Control"] == "no-cache" and whole.headers["Access-Control-Allow-Origin"] == "*"
        assert whole.headers["Last-Modified"] and whole.headers["Accept-Ranges"] == "bytes"
        # nginx's own entity tag (mtime in seconds), not the app's (in nanoseconds): nginx sent it
        assert len(whole.headers["ETag"].strip('"').split("-")[0]) <= 9, whole.headers["ETag"]
        assert int(whole.headers["Content-Length"]) == len(whole.content) > 0
        part = requests.get(f"{worker.url}/{name}", headers={"Range": "bytes=0-99"}, timeout=10)
        assert part.status_code == 206 and part.content == whole.content[:100]
        again = requests.get(f"{worker.url}/{name}", headers={"If-None-Match": whole.headers["ETag"]}, timeout=10)
        assert again.status_code == 304
    # nginx sent every file itself (above), and the worker booked each whole or partial one
    wait_for(lambda: worker.segments_served() == before + 6, 5, what="nginx's bookings")
    playlist = requests.get(f"{worker.url}/fts.m3u8", timeout=10)
    assert playlist.status_code == 200 and playlist.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert requests.get(f"{worker.url}/nojob_0.ts", timeout=10).status_code == 404
    for job_id in ("fts", "fm4"):
        worker.delete(job_id)


def test_files_nginx_sends_itself_are_booked(make_worker, media_root):
    """The idle clock and throttling's resume move on segments nginx sends without the app."""
    worker = make_worker(front="nginx", throttle_lead_s=8.0, idle_job_timeout_s=3.0, stop_grace_s=3.0)
    body = {"job_id": "booked", "source_path": str(media_root / mf.LONG), "configuration": {"bitrate_bps": 300_000}}
    assert worker.post_job(body).status_code == 202
    assert requests.get(f"{worker.url}/booked_0.ts", timeout=30).status_code == 200  # the app waited for it
    wait_for(lambda: worker.job("booked")["throttled"], 30, what="the job to be paused")
    held = worker.job("booked")["last_segment_id"]
    deadline = time.monotonic() + 6  # twice the idle limit, on segment 0 alone: nginx's, from disk
    while time.monotonic() < deadline:
        assert requests.get(f"{worker.url}/booked_0.ts", timeout=10).status_code == 200
        time.sleep(0.5)
    assert worker.job("booked")["throttled"]  # still ahead of the player: still paused
    assert requests.get(f"{worker.url}/booked_{held}.ts", timeout=10).status_code == 200  # the player caught up
    wait_for(lambda: not worker.job("booked")["throttled"], 5, what="the job to resume")
    wait_for(lambda: worker.job("booked")["last_segment_id"] > held, 30, what="FFmpeg to write again")
    # no more requests: the idle clock runs out
    wait_for(lambda: worker.jobs() == [] and not worker.ffmpeg_pids() and not (worker.segment_root / "booked").exists(),
             10, what="the unwatched job to be stopped and its folder removed")


def test_slow_clients_starve_nothing(make_worker, media_root):
    worker = make_worker(front="nginx", http_threads=8)
    with SlowClients(worker.settings["listen"], 300):
        time.sleep(2)  # they have all begun trickling
        started = time.monotonic()
        assert requests.get(f"{worker.url}/healthz", timeout=5).status_code == 200
        assert worker.post_job({"job_id": "loris", "source_path": str(media_root / mf.H264)}).status_code == 202
        code, seconds, err = play(f"{worker.url}/loris.m3u8")
        assert code == 0 and seconds > 4, err
        assert requests.get(f"{worker.url}/healthz", timeout=5).status_code == 200
        assert worker.delete("loris").status_code == 200
        assert time.monotonic() - started < 30
    assert not worker.ffmpeg_pids()


def test_a_killed_nginx_is_started_again(make_worker, media_root):
    worker = make_worker(front="nginx")
    [master] = [p for p in nginx_processes(worker) if p.ppid() != 1 and p.parent().name() != "nginx"]
    group = [p.pid for p in nginx_processes(worker)]
    master.send_signal(signal.SIGKILL)
    wait_for(lambda: all(process_gone(pid) for pid in group), 10, what="the old nginx and its worker gone")
    wait_for(lambda: nginx_processes(worker) and answers(f"{worker.url}/healthz"), 20, what="a new nginx")
    assert not set(group) & {p.pid for p in nginx_processes(worker)}
    assert worker.post_job({"job_id": "after", "source_path": str(media_root / mf.H264)}).status_code == 202
    worker.delete("after")
    assert not worker.ffmpeg_pids()
    assert psutil.Process(worker.proc.pid).is_running()


def test_an_nginx_that_keeps_dying_stops_the_service_and_its_ffmpeg(make_worker, media_root):
    worker = make_worker(front="nginx")
    assert worker.post_job({"job_id": "doomed", "source_path": str(media_root / mf.LONG),
                            "configuration": {"bitrate_bps": 300_000}}).status_code == 202
    ffmpeg, seen = worker.ffmpeg_pids(), set()
    assert ffmpeg
    for _ in range(4):  # more than 3 deaths within a minute
        master = wait_for(lambda: next((p for p in nginx_processes(worker) if p.pid not in seen
                                        and p.ppid() == worker.proc.pid), None), 20, what="an nginx to kill")
        seen.update(p.pid for p in nginx_processes(worker))
        master.send_signal(signal.SIGKILL)
        time.sleep(0.5)
    assert worker.proc.wait(30) == 1  # stopped in order, status 1: systemd's Restart=on-failure starts it again
    assert all(process_gone(pid) for pid in ffmpeg + sorted(seen))
    assert "nginx died 4 times" in worker.log() and "stopping the service" in worker.log()


def _tasks(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def _kill_front(worker):
    [master] = [p for p in nginx_processes(worker) if p.ppid() == worker.proc.pid]
    group = [p.pid for p in nginx_processes(worker)]
    master.send_signal(signal.SIGKILL)
    wait_for(lambda: all(process_gone(pid) for pid in group), 10, what="nginx gone")


def test_an_nginx_that_cannot_be_forked_for_a_moment_is_started_again(make_worker, media_root):
    """The service's master cannot fork (a pids cgroup at its limit) when nginx dies. Before, the
    watcher thread died of the failed fork: nginx was never started again, `listen` refused every
    connection and the service looked healthy to systemd. Now it tries again, and once the limit
    is lifted the front is back, the service never stopped."""
    worker = make_worker(front="nginx")
    with kernel_faults.fork_limit(worker.proc.pid, _tasks(worker.proc.pid)) as group:
        _kill_front(worker)
        wait_for(lambda: "nginx cannot be started" in worker.log(), 10, what="a failed start logged")
        assert not answers(f"{worker.url}/healthz")
        wait_for(lambda: "the front (nginx) does not accept connections" in worker.log(), 15,
                 what="the health check's finding")  # (ERROR in the heartbeat: no job is taken)
        (group / "pids.max").write_text("max")
        wait_for(lambda: answers(f"{worker.url}/healthz"), 20, what="nginx started again")
    assert worker.proc.poll() is None and "trying again" in worker.log()
    wait_for(lambda: requests.get(f"{worker.url}/healthz", timeout=5).json()["problems"] == [], 15,
             what="the health check's finding cleared")
    assert worker.post_job({"job_id": "back", "source_path": str(media_root / mf.H264)}).status_code == 202
    assert worker.delete("back").status_code == 200


def test_an_nginx_that_cannot_be_forked_at_all_stops_the_service_with_status_1(make_worker, media_root):
    """Still no fork after SPAWN_TRIES starts in a row: the service stops, with status 1 so that
    systemd's Restart=on-failure starts it again, and no FFmpeg outlives it."""
    worker = make_worker(front="nginx")
    assert worker.post_job({"job_id": "doomed", "source_path": str(media_root / mf.LONG),
                            "configuration": {"bitrate_bps": 300_000}}).status_code == 202
    ffmpeg = worker.ffmpeg_pids()
    assert ffmpeg
    with kernel_faults.fork_limit(worker.proc.pid, _tasks(worker.proc.pid)):
        _kill_front(worker)
        assert worker.proc.wait(30) == 1
    assert all(process_gone(pid) for pid in ffmpeg)
    assert "cannot be started" in worker.log() and "5 times in a row: stopping the service" in worker.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx's workers are another user only for a service started as root")
def test_nginx_workers_started_by_root_run_as_nobody_and_serve(make_worker, media_root):
    """Started as root, nginx's workers (they parse every client's request) run as nginx_user
    (nobody), and reach all they serve: even under a strict umask, the segments FFmpeg writes,
    their folders, the links, nginx's temporary files for a request body."""
    with umask(0o077):  # the service and everything it makes inherit it
        worker = make_worker(front="nginx")
    nobody = pwd.getpwnam("nobody")
    master, workers = nginx_workers(worker)
    assert master.uids().real == 0  # binds the port, reads the configuration
    assert workers, "nginx has worker processes"
    for proc in workers:
        assert set(proc.uids()) == {nobody.pw_uid} and set(proc.gids()) == {nobody.pw_gid}, proc
    # what nobody must reach is opened for it (search, not list); nothing else is
    assert os.stat(worker.segment_root).st_mode & 0o007 == 0o001

    assert worker.post_job({"job_id": "nobody", "source_path": str(media_root / mf.H264)}).status_code == 202
    worker.wait_state("nobody", {"COMPLETED"})
    code, seconds, err = play(f"{worker.url}/nobody.m3u8")  # through nginx, which sends the segments
    assert code == 0 and seconds > 4, err
    segment = requests.get(f"{worker.url}/nobody_0.ts", timeout=10)
    assert segment.status_code == 200 and len(segment.content) > 0
    assert len(segment.headers["ETag"].strip('"').split("-")[0]) <= 9  # nginx's own: nginx read the file
    # a body past nginx's buffer goes to its temporary folder, as nobody, on its way to the app
    big = requests.post(f"{worker.url}/v1/jobs", json={"job_id": "x" * 40_000}, timeout=30)
    assert big.status_code == 422, big.text
    assert worker.delete("nobody").status_code == 200


def test_the_nginx_user_directive(tmp_path, monkeypatch):
    """Root's service names nginx_user and its primary group; another user's names none."""
    from transcode_worker import front
    from transcode_worker.config import ConfigError, load_settings
    settings = load_settings(environ={}, path=None)
    settings.spool_dir, settings.segment_root = str(tmp_path / "spool"), str(tmp_path / "segments")
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name  # nogroup on Debian, nobody elsewhere
    monkeypatch.setattr(front.os, "geteuid", lambda: 0)
    assert f"user nobody {group};" in front.nginx_conf(settings, "127.0.0.1:1", tmp_path, "127.0.0.1:2")
    settings.nginx_user = "no-such-user-here"
    with pytest.raises(ConfigError, match="nginx_user"):
        front.nginx_conf(settings, "127.0.0.1:1", tmp_path, "127.0.0.1:2")
    monkeypatch.setattr(front.os, "geteuid", lambda: 1000)
    assert "user " not in front.nginx_conf(settings, "127.0.0.1:1", tmp_path, "127.0.0.1:2")


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx's workers are another user only for a service started as root")
def test_a_folder_closed_to_nginx_user_stops_the_start_naming_it(tmp_path, media_root):
    """A folder on the way to segment_root that nginx's workers cannot enter is left as it is:
    the start stops, in one line naming the key and the folder."""
    open_to_others(tmp_path)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODE_WORKER_")}
    result = subprocess.run(
        [sys.executable, "-m", "transcode_worker", "serve"], capture_output=True, text=True, timeout=30,
        env={**clean, "TRANSCODE_WORKER_LISTEN": f"127.0.0.1:{free_port()}", "TRANSCODE_WORKER_MEDIA_ROOTS": str(media_root),
             "TRANSCODE_WORKER_SEGMENT_ROOT": str(closed / "segments"),
             "TRANSCODE_WORKER_SPOOL_DIR": str(tmp_path / "spool")})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "segment_root" in line and str(closed) in line and "nobody" in line, line
    assert stat.S_IMODE(closed.stat().st_mode) == 0o700  # not the worker's to open
