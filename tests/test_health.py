"""HealthMonitor: real folders; a check that hangs like a dead NFS mount is bounded."""
import os
import threading
import time
from types import SimpleNamespace

from transcode_worker.health import HealthMonitor


def settings(tmp_path, **overrides):
    media, segments = tmp_path / "media", tmp_path / "segments"
    media.mkdir(exist_ok=True)
    segments.mkdir(exist_ok=True)
    values = dict(media_roots=[str(media)], segment_root=str(segments), ffmpeg_path="ffmpeg",
                  ffprobe_path="ffprobe", min_free_disk_bytes=0, health_check_timeout_s=1.0)
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
