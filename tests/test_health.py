"""HealthMonitor: real folders; a check that hangs like a dead NFS mount is bounded."""
import os
import socket
import threading
import time
from types import SimpleNamespace

import pytest

import kernel_faults
from transcode_worker.health import HealthMonitor


def settings(tmp_path, **overrides):
    media, segments, spool = tmp_path / "media", tmp_path / "segments", tmp_path / "spool"
    for folder in (media, segments, spool):
        folder.mkdir(exist_ok=True)
    values = dict(media_roots=[str(media)], segment_root=str(segments), ffmpeg_path="ffmpeg",
                  ffprobe_path="ffprobe", min_free_disk_bytes=0, health_check_timeout_s=1.0,
                  spool_dir=str(spool), listen="127.0.0.1:1")
    values.update(overrides)
    return SimpleNamespace(**values)


def test_a_healthy_machine_has_no_problems(tmp_path):
    assert HealthMonitor(settings(tmp_path)).check_now() == ()


def test_each_problem_is_named(tmp_path):
    s = settings(tmp_path, ffmpeg_path="/nonexistent/ffmpeg", min_free_disk_bytes=1 << 60,
                 media_roots=[str(tmp_path / "media"), str(tmp_path / "gone")])
    problems = HealthMonitor(s).check_now()
    assert "FFmpeg (/nonexistent/ffmpeg) is missing" in problems
    assert f"media root {tmp_path / 'gone'} is missing or not a folder" in problems
    assert any("below the floor" in p and "min_free_disk_bytes" in p for p in problems)
    assert len(problems) == 3


def test_unwritable_segment_root(tmp_path):
    s = settings(tmp_path, segment_root=str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder")
    (problem,) = HealthMonitor(s).check_now()
    assert problem.startswith(f"segment_root {tmp_path / 'file'} is not writable")
    assert os.listdir(tmp_path / "segments") == []  # the write check leaves nothing behind


@pytest.mark.parametrize("left", ["bytes", "inodes"])
def test_a_full_spool_dir_is_a_problem(tmp_path, left):
    """A spool_dir with no byte (or no inode) left: heartbeats, front links, subtitles and LUTs
    cannot be written, so the worker says so and takes no job (before, /healthz said ok)."""
    spool = tmp_path / "spool"
    with kernel_faults.small_tmpfs(spool, inodes=16 if left == "inodes" else 4096):
        assert HealthMonitor(settings(tmp_path)).check_now() == ()
        if left == "inodes":
            for n in range(100):
                try:
                    (spool / f"f{n}").touch()
                except OSError:
                    break
        else:
            kernel_faults.fill(spool)
        (problem,) = HealthMonitor(settings(tmp_path)).check_now()
        assert problem == f"spool_dir {spool} is not writable (No space left on device)", problem


def test_a_front_that_accepts_no_connection_is_a_problem(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    listen = f"0.0.0.0:{listener.getsockname()[1]}"  # a wildcard address is checked on loopback
    try:
        assert HealthMonitor(settings(tmp_path, listen=listen, health_check_timeout_s=3), front=True).check_now() == ()
    finally:
        listener.close()
    (problem,) = HealthMonitor(settings(tmp_path, listen=listen, health_check_timeout_s=3), front=True).check_now()
    assert problem == f"the front (nginx) does not accept connections on {listen} (Connection refused)", problem


def test_a_hanging_check_is_bounded_and_not_piled_up(tmp_path):
    release = threading.Event()
    started = []

    def dead_mount():
        started.append(1)
        release.wait(30)
        return None

    monitor = HealthMonitor(settings(tmp_path), timeout_s=0.2, checks={"media_root /nas": dead_mount})
    t0 = time.monotonic()
    (problem,) = monitor.check_now()
    assert time.monotonic() - t0 < 1.0
    assert problem.startswith("media_root /nas check: no answer for")
    monitor.check_now()
    assert started == [1]  # the hung check is not started again while it hangs
    release.set()
    time.sleep(0.05)
    assert monitor.check_now() == ()
    assert monitor.reason() is None


def test_monitor_thread_updates_and_stops(tmp_path):
    state = {"problem": None}
    monitor = HealthMonitor(settings(tmp_path), interval_s=0.05, checks={"x": lambda: state["problem"]})
    monitor.start()
    try:
        state["problem"] = "x broke"
        deadline = time.monotonic() + 5
        while monitor.reason() != "x broke" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert monitor.reason() == "x broke"
    finally:
        monitor.stop()
    assert not monitor._thread.is_alive()
