"""What this run of the worker is doing, on disk, so that the next run knows what a crash left.

``spool_dir/run-state.json`` holds, at every job transition, the active jobs with their folders
and FFmpeg processes (pid and start time). A clean shutdown marks it clean. A worker killed
without a chance to clean up (SIGKILL, power loss) leaves it unclean, and the next run:

- ends every FFmpeg the file names that is still running, identified by pid *and* process start
  time (together unique on a machine), so a pid reused by another program is never touched;
- removes the job folders the file names, and any other folder under segment_root that holds
  nothing but HLS output (only there: never anything outside segment_root);
- reports those job ids as lost at its next registration, until the orchestrator has accepted it.
"""
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import threading
import time

import psutil

from . import hls_names
from .schemas import JOB_ID_PATTERN
from .validation import is_inside

log = logging.getLogger(__name__)

STATE_FILE = "run-state.json"
_JOB_ID = re.compile(JOB_ID_PATTERN)


class RunState:
    def __init__(self, spool_dir, segment_root):
        self.path = os.path.join(spool_dir, STATE_FILE)
        self.segment_root = os.path.realpath(segment_root)
        self._lock = threading.Lock()
        self.previous = self._read()
        self.unclean_restart = bool(self.previous) and not self.previous.get("clean", False)
        self.lost_jobs = list(self.previous.get("lost_jobs_unreported", [])) if self.previous else []
        self._jobs = {}
        self._clean = False

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("run state %s unreadable (%s): treated as an unclean end", self.path, exc)
            return {"clean": False, "jobs": {}}

    # -- at start -----------------------------------------------------------------------------
    def recover(self, standalone=False):
        """End what a previous run left (FFmpeg, folders); return the ids of the jobs it lost.
        `standalone`: no orchestrator will ever take them; the log says them once, and no later
        start says them again."""
        lost = list(self.lost_jobs)
        jobs = (self.previous or {}).get("jobs") or {}
        if self.unclean_restart:
            for job_id, entry in jobs.items():
                _end_leftover_ffmpeg(job_id, entry)
                folder = entry.get("folder")
                if folder and is_inside(os.path.realpath(folder), self.segment_root, strictly=True):
                    shutil.rmtree(folder, ignore_errors=True)
                if job_id not in lost:
                    lost.append(job_id)
        for name in self._leftover_folders():
            shutil.rmtree(os.path.join(self.segment_root, name), ignore_errors=True)
            if name not in lost:
                lost.append(name)
        for name in self._set_aside_folders():  # deleted jobs' folders, being removed at the crash
            shutil.rmtree(os.path.join(self.segment_root, name), ignore_errors=True)
        if lost:
            log.warning("a previous run ended without cleaning up; lost job(s): %s", ", ".join(lost))
        self.lost_jobs = [] if standalone else lost
        self._write()
        return lost

    def _set_aside_folders(self):
        try:
            return sorted(e.name for e in os.scandir(self.segment_root)
                          if e.name.startswith(hls_names.REMOVING) and e.is_dir(follow_symlinks=False))
        except OSError:
            return []

    def _leftover_folders(self):
        """Folders directly under segment_root that hold only HLS output (ours, from a crash)."""
        found = []
        try:
            entries = list(os.scandir(self.segment_root))
        except OSError:
            return found
        for entry in entries:
            if not (_JOB_ID.match(entry.name) and entry.is_dir(follow_symlinks=False)):
                continue
            try:
                names = os.listdir(entry.path)
            except OSError:
                continue
            if all(hls_names.ANY_FILE.fullmatch(n) for n in names):
                found.append(entry.name)
        return sorted(found)

    def lost_jobs_reported(self):
        """The orchestrator accepted a registration carrying lost_jobs: stop reporting them."""
        with self._lock:
            self.lost_jobs = []
        self._write()

    # -- while running ------------------------------------------------------------------------
    def job_changed(self, job, active):
        """Record (or forget, when no longer active) one job; called on every job transition."""
        with self._lock:
            if active:
                entry = {"folder": str(job.folder), "ffmpeg_pid": job.pid}
                if job.pid:
                    entry.update(_identity(job.pid))
                self._jobs[job.job_id] = entry
            else:
                self._jobs.pop(job.job_id, None)
        self._write()

    def close(self):
        """A clean end: every job stopped and its folder removed."""
        with self._lock:
            self._jobs.clear()
            self._clean = True
        self._write()

    def _write(self):
        with self._lock:
            data = {"pid": os.getpid(), "written_at": time.time(), "clean": self._clean,
                    "jobs": dict(self._jobs), "lost_jobs_unreported": list(self.lost_jobs)}
            tmp = self.path + ".tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(data, fh)
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("cannot write the run state %s: %s", self.path, exc)


def _identity(pid):
    try:
        proc = psutil.Process(pid)
        return {"ffmpeg_started": proc.create_time()}
    except (psutil.Error, OSError):
        return {}


def _end_leftover_ffmpeg(job_id, entry):
    pid, started = entry.get("ffmpeg_pid"), entry.get("ffmpeg_started")
    if not (pid and started):
        return False
    try:
        if abs(psutil.Process(pid).create_time() - started) > 0.01:
            return False  # the pid now belongs to another process: never touch it
        os.killpg(pid, signal.SIGKILL)  # FFmpeg leads its own group (process_group=0)
        log.warning("job %s: ended FFmpeg pid %d left running by a previous run", job_id, pid,
                    extra={"job_id": job_id})
        return True
    except (psutil.Error, ProcessLookupError, PermissionError):
        return False


LOCK_FILE = ".transcode-worker.lock"


def _is_sibling(pid):
    try:
        return psutil.Process(int(pid)).ppid() == os.getppid() != 1
    except (ValueError, psutil.Error):
        return False


class FolderInUse(Exception):
    """Another running worker holds this folder; str() says which."""


def lock_folder(folder, sibling_wait_s=0.0):
    """Hold an exclusive lock on `folder` for the life of this process (returns the open file).

    Two workers sharing a segment_root or spool_dir would delete each other's jobs at start-up and
    mix their run states, so the second one is refused. The kernel drops the lock when the holder
    dies, however it dies. A holder with the same parent is the process this one replaces (a
    SIGHUP makes gunicorn start the new worker process, then stop the old): for that one, this
    waits up to `sibling_wait_s` while it stops its jobs and exits."""
    path = os.path.join(folder, LOCK_FILE)
    fh = open(path, "a+", encoding="utf-8")
    deadline = time.monotonic() + sibling_wait_s
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            if time.monotonic() < deadline and _is_sibling(holder):
                time.sleep(0.1)
                continue
            fh.close()
            raise FolderInUse(f"{folder} is in use by another transcode-worker (pid {holder})") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh
