"""What stopped runs leave behind, until it is gone: FFmpeg processes killed but not ended yet, and
folders to remove. And the one place the worker deletes.

A run is stopped without waiting for its FFmpeg (no lock waits on a process: jobs.JobManager kills
it and starts the next): until its FFmpeg has ended it is Dying, and holds a slot. One that SIGKILL
does not end (uninterruptible sleep on a hung disk or network share) is stuck: reported, and a
deleted job's folder stays until it ends. A folder is removed in two steps: renamed aside at the
top of segment_root at once (hls_names.REMOVING; a start after a crash removes what is left), then
removed with no lock held.
"""
import dataclasses
import logging
import os
import shutil
import threading
import time

from . import hls_names
from .supervisor import REAP_WAIT_S
from .validation import is_inside

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Dying:
    """A run whose FFmpeg was stopped and has not ended yet. `folder`: removed once it ends (a
    deleted job's), else None."""
    run: object
    killed_at: float  # monotonic time of its SIGKILL
    folder: object = None

    def ended(self):
        return self.run.supervisor.ended()

    def stuck_for(self, now):
        """Seconds since its SIGKILL, once past REAP_WAIT_S (else None: it is merely dying)."""
        return now - self.killed_at if now - self.killed_at > REAP_WAIT_S else None


class Leftovers:
    """The Dying runs and the folders set aside of one worker. Its lock is a leaf: taken under the
    job manager's, never the other way round."""

    def __init__(self, segment_root):
        self.segment_root = os.path.realpath(segment_root)
        self._dying = []
        self._bin = []  # folders set aside, to be removed with no lock held
        self._lock = threading.Lock()

    # -- FFmpeg not ended yet -------------------------------------------------------------------
    def add(self, run, killed_at=None, folder=None):
        with self._lock:
            self._dying.append(Dying(run, time.monotonic() if killed_at is None else killed_at, folder))

    def dying(self):
        """The Dying whose FFmpeg has not ended."""
        with self._lock:
            return [d for d in self._dying if not d.ended()]

    def stuck(self, job_id=None):
        """The Dying (of `job_id`, or all) that SIGKILL has not ended for REAP_WAIT_S."""
        now = time.monotonic()
        return [d for d in self.dying() if d.stuck_for(now) and (job_id is None or d.run.job_id == job_id)]

    def holding(self, folder):
        """A Dying whose folder (a deleted job's, removed once it ends) overlaps `folder`, or None."""
        return next((d for d in self.dying() if d.folder is not None and (
            is_inside(folder, d.folder) or is_inside(d.folder, folder))), None)

    def reap(self):
        """Forget the Dying that have ended, setting their folders aside (the janitor's round);
        then remove what was set aside."""
        with self._lock:
            ended = [d for d in self._dying if d.ended()]
            self._dying = [d for d in self._dying if d not in ended]
        for dying in ended:
            if dying.stuck_for(time.monotonic()):
                log.warning("job %s: FFmpeg pid %s has ended at last", dying.run.job_id, dying.run.pid,
                            extra={"job_id": dying.run.job_id})
            if dying.folder is not None:
                self.discard(dying.folder)
        self.empty_bin()

    # -- folders ------------------------------------------------------------------------------
    def discard(self, folder):
        """Remove `folder` (strictly inside segment_root), when a lock is held: renamed aside now,
        removed by empty_bin() once none is. A folder on another file system under segment_root
        cannot be renamed there: it goes the same way, where it is."""
        real = self._inside(folder)
        if real is None:
            return
        aside = os.path.join(self.segment_root, f"{hls_names.REMOVING}{os.path.basename(real)}-{time.monotonic_ns()}")
        try:
            os.rename(real, aside)
        except FileNotFoundError:
            return
        except OSError:  # EXDEV: it is removed where it is
            aside = real
        with self._lock:
            self._bin.append(aside)

    def empty_bin(self):
        """Remove what discard() set aside; called with no lock held."""
        with self._lock:
            folders, self._bin = self._bin, []
        for folder in folders:
            self.remove(folder)

    def remove(self, folder):
        """The one place the worker deletes: only strictly inside segment_root, never a symlink's
        target."""
        real = self._inside(folder)
        if real is None:
            return
        shutil.rmtree(real, ignore_errors=True)
        if os.path.exists(real):
            log.warning("could not remove all of %s", real)

    def _inside(self, folder):
        """`folder`'s real path when it lies strictly inside segment_root, else None (said)."""
        real = os.path.realpath(folder)
        if not is_inside(real, self.segment_root, strictly=True):
            log.error("refusing to delete %s: outside segment_root %s", folder, self.segment_root)
            return None
        return real
