"""HealthMonitor: can this worker do jobs at all? Checked off the request and heartbeat threads.

Problems put the worker in ERROR (status.py) and make it refuse new jobs with 503 and the reason:
a media root that is missing or does not answer, FFmpeg or ffprobe gone, segment_root not
writable or below its free-space floor, spool_dir not writable (a full disk: no byte or no inode
left), the front (nginx) not accepting connections on `listen`. A stat on a dead NFS mount can hang for minutes, so every
check runs on a helper thread with a timeout; a check still hanging from an earlier round is not
started again (no pile of stuck threads), and reads as "no answer for N s".
"""
import logging
import os
import shutil
import socket
import tempfile
import threading
import time

from .config import listen_address

log = logging.getLogger(__name__)

GIB = 1024 ** 3


def _check_media_root(root):
    if not os.path.isdir(root):
        return f"media root {root} is missing or not a folder"
    os.listdir(root)  # a stale mount fails (or hangs) here even when the stat is cached
    return None


WRITE_CHECK_PREFIX = ".write-check-"  # the file that proves a folder writable, there for an instant
FRONT_TRIES = 3  # connections tried, FRONT_RETRY_S apart: a restarting nginx is back within 0.2 s
FRONT_RETRY_S = 0.5


def _check_writable(root, what):
    """A file made and a byte written in `root` (a full disk has no inode, or no byte, left)."""
    try:
        fd, probe = tempfile.mkstemp(dir=root, prefix=WRITE_CHECK_PREFIX)
    except OSError as exc:
        return f"{what} {root} is not writable ({exc.strerror})"
    try:
        os.write(fd, b"x")
    except OSError as exc:
        return f"{what} {root} is not writable ({exc.strerror})"
    finally:
        os.close(fd)
        os.unlink(probe)
    return None


def _check_segment_root(root, min_free_bytes):
    problem = _check_writable(root, "segment_root")
    if problem:
        return problem
    free = shutil.disk_usage(root).free
    if free < min_free_bytes:
        return (f"segment_root {root} has {free / GIB:.2f} GiB free, below the floor of "
                f"{min_free_bytes / GIB:.2f} GiB (min_free_disk_bytes)")
    return None


def _check_front(listen):
    """nginx accepts connections on `listen` (its own address; a wildcard is reached on loopback)."""
    host, port = listen_address(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    for attempt in range(FRONT_TRIES):
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return None
        except OSError as exc:
            error = exc.strerror or str(exc)
        if attempt < FRONT_TRIES - 1:
            time.sleep(FRONT_RETRY_S)
    return f"the front (nginx) does not accept connections on {listen} ({error})"


def _check_executable(name, what):
    return None if shutil.which(name) else f"{what} ({name}) is missing"


class HealthMonitor:
    """Runs the checks every `interval_s` on its own thread; `problems` is the latest finding."""

    def __init__(self, settings, interval_s=5.0, timeout_s=None, checks=None, front=False):
        self.interval_s = interval_s
        self.timeout_s = timeout_s if timeout_s is not None else settings.health_check_timeout_s
        self.checks = checks if checks is not None else self.default_checks(settings, front)
        self.problems = ()  # replaced whole, never mutated: safe to read from any thread
        self._pending = {}  # check name -> (thread, started) still running from an earlier round
        self._results = {}
        self._stop = threading.Event()
        self._thread = None

    @staticmethod
    def default_checks(settings, front=False):
        """{name: callable() -> problem or None}, in report order; `front`: nginx runs on `listen`."""
        checks = {
            "ffmpeg": lambda: _check_executable(settings.ffmpeg_path, "FFmpeg"),
            "ffprobe": lambda: _check_executable(settings.ffprobe_path, "ffprobe"),
            "segment_root": lambda: _check_segment_root(settings.segment_root, settings.min_free_disk_bytes),
            "spool_dir": lambda: _check_writable(settings.spool_dir, "spool_dir"),
        }
        if front:
            checks["front"] = lambda: _check_front(settings.listen)
        for root in settings.media_roots:
            checks[f"media_root {root}"] = lambda root=root: _check_media_root(root)
        return checks

    def reason(self):
        """Why new jobs must be refused now, or None."""
        return "; ".join(self.problems) or None

    def check_now(self):
        """One round of every check, each bounded by timeout_s; returns and keeps the problems."""
        deadline = time.monotonic() + self.timeout_s
        for name, check in self.checks.items():
            if name not in self._pending:
                thread = threading.Thread(target=self._run_check, args=(name, check),
                                          name=f"health-{name}"[:40], daemon=True)
                self._pending[name] = (thread, time.monotonic())
                thread.start()
        problems = []
        for name in self.checks:
            thread, started = self._pending[name]
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                problems.append(f"{name} check: no answer for {time.monotonic() - started:.0f}s "
                                f"(an unreachable network mount?)")
                continue
            del self._pending[name]
            if self._results.get(name):
                problems.append(self._results[name])
        if tuple(problems) != self.problems:
            if problems:
                log.error("health: %s", "; ".join(problems))
            elif self.problems:
                log.info("health: all checks pass again")
        self.problems = tuple(problems)
        return self.problems

    def _run_check(self, name, check):
        try:
            self._results[name] = check()
        except OSError as exc:
            self._results[name] = f"{name}: {exc.strerror or exc}"
        except Exception as exc:  # a check must report, never kill its thread silently
            self._results[name] = f"{name}: {exc}"

    def start(self):
        self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.check_now()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1)
