"""JobSupervisor: the thread that owns one FFmpeg process from spawn to reap."""
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque

from .progress import ProgressParser
from .states import ENDED_STATES, WRITING_STATES, JobState

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 40
STDERR_LINE_CHARS = 400
SPAWN_WAIT_S = 10
REAP_WAIT_S = 5
# PR_SET_PDEATHSIG through util-linux's setpriv (which then execs FFmpeg, keeping the pid):
# if the worker dies without a chance to stop FFmpeg, the kernel kills FFmpeg for it.
# It follows the thread that spawned FFmpeg, which is why the supervisor thread spawns it
# and outlives it.
SETPRIV = shutil.which("setpriv")


NICE = shutil.which("nice")


def pdeathsig_prefix():
    return [SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []


def nice_prefix():
    """Background work (probes, subtitle extraction) at the lowest CPU priority."""
    return [NICE, "-n", "19"] if NICE else []


class JobSupervisor(threading.Thread):
    """Spawns the job's FFmpeg in its own process group, follows its progress and playlist,
    records its end, and stops it (SIGTERM, a bounded grace, SIGKILL, reap) on request."""

    def __init__(self, job, argv, *, umask=-1, source_fd=None, failure=None):
        """`umask`: FFmpeg's (-1 keeps the worker's; a worker started as root passes one that lets
        nginx's workers, another user, read the segments). `source_fd`: the source, opened by the
        worker (inputs.open_source), handed to FFmpeg under the same number and closed here once
        FFmpeg has it. `failure`: why the run cannot start (its files could not be made): the job
        ends FAILED with it, no FFmpeg spawned."""
        super().__init__(name=f"job-{job.job_id}", daemon=True)
        self.cannot_start = failure
        self.job = job
        self.argv = argv
        self.umask = umask
        self.source_fd = source_fd
        self.stderr_tail = deque(maxlen=STDERR_TAIL_LINES)
        self._proc = None
        self._spawned = threading.Event()
        self._stop_requested = False
        self._failure = None  # why the worker itself killed FFmpeg (a stall)
        self._killed_at = None  # when it did (monotonic)

    # -- the thread ---------------------------------------------------------------------------
    def run(self):
        job = self.job
        with job.changed:
            try:
                if self._stop_requested:  # stopped before it started: STOPPING -> STOPPED
                    job.change_state(JobState.STOPPED)
                    self._spawned.set()
                    return
                if self.cannot_start:  # STARTING -> FAILED
                    job.change_state(JobState.FAILED, error=self.cannot_start)
                    self._spawned.set()
                    return
                try:
                    self._proc = subprocess.Popen(
                        pdeathsig_prefix() + self.argv, cwd=job.folder, stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_group=0, close_fds=True,
                        umask=self.umask, pass_fds=() if self.source_fd is None else (self.source_fd,),
                    )
                except OSError as exc:  # STARTING -> FAILED
                    job.change_state(JobState.FAILED, error=f"cannot start FFmpeg: {exc}")
                    self._spawned.set()
                    return
            finally:
                if self.source_fd is not None:  # FFmpeg has its own copy, or will never need it
                    os.close(self.source_fd)
                    self.source_fd = None
            job.record_pid(self._proc.pid)
        self._spawned.set()
        log.info("job %s: FFmpeg started, pid %d", job.job_id, self._proc.pid, extra={"job_id": job.job_id})
        drain = threading.Thread(target=self._drain_stderr, name=f"job-{job.job_id}-stderr", daemon=True)
        try:
            drain.start()
            self._follow_progress()
        except Exception as exc:  # never a run left RUNNING that nobody follows: it ends, FAILED
            log.exception("job %s: following FFmpeg failed", job.job_id, extra={"job_id": job.job_id})
            self.kill_stalled(f"the worker could not follow FFmpeg: {exc}")
            self._proc.stdout.close()
        exit_code = self._proc.wait()
        if drain.is_alive():
            drain.join(timeout=REAP_WAIT_S)
        try:
            job.collector.finish()
        except OSError as exc:
            log.warning("job %s: the run's last segments: %s", job.job_id, exc, extra={"job_id": job.job_id})
        self._finish(exit_code)

    def _follow_progress(self):
        parser = ProgressParser()
        for raw in self._proc.stdout:
            snapshot = parser.feed(raw.decode(errors="replace"))
            if snapshot is not None:
                self.job.record_progress(snapshot)
                self.job.collect()

    def _drain_stderr(self):
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.stderr_tail.append(line[:STDERR_LINE_CHARS])

    def _finish(self, exit_code):
        job = self.job
        tail = list(self.stderr_tail)
        go_on_from = None
        with job.changed:
            job.exit_code = exit_code
            if job.state in ENDED_STATES:  # FAILED already: it outlived SIGKILL (stop), now it ended
                log.warning("job %s: FFmpeg pid %s ended at last (exit %s)", job.job_id, job.pid, exit_code,
                            extra={"job_id": job.job_id})
                return
            if self._stop_requested:  # STOPPING -> STOPPED
                job.change_state(JobState.STOPPED)
            elif self._failure:  # STARTING/RUNNING -> FAILED: killed by the janitor
                job.change_state(JobState.FAILED, error=self._failure, stderr_tail=tail)
            elif exit_code == 0 and job.last_segment_id is not None and job.go_on is not None and (
                    go_on_from := job.next_to_make()) is not None:
                # the run made its span, short of the film's end: the job goes on in its next run
                job.superseded = True
                job.change_state(JobState.COMPLETED)
            elif exit_code == 0 and job.last_segment_id is not None:  # RUNNING -> COMPLETED
                job.change_state(JobState.COMPLETED, progress=100.0)
            elif exit_code == 0:  # STARTING -> FAILED
                job.change_state(JobState.FAILED, error="FFmpeg finished without writing a segment",
                                 stderr_tail=tail)
            else:  # STARTING/RUNNING -> FAILED
                how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with status {exit_code}"
                job.change_state(JobState.FAILED, error=f"FFmpeg {how}", stderr_tail=tail)
        log.log(logging.WARNING if job.state is JobState.FAILED else logging.INFO,
                "job %s: FFmpeg pid %s ended (%s, exit %s)%s", job.job_id, job.pid, job.state, exit_code,
                f": {tail[-1]}" if job.state is JobState.FAILED and tail else "", extra={"job_id": job.job_id})
        if go_on_from is not None:
            job.go_on(job, go_on_from)

    # -- called from other threads ------------------------------------------------------------
    def wait_spawned(self, timeout=SPAWN_WAIT_S):
        return self._spawned.wait(timeout)

    def stop(self, grace_s, *, kill_now=False):
        """Stop FFmpeg and wait for this thread; True once FFmpeg has ended. kill_now skips SIGTERM:
        for output about to be thrown away, where the grace would only delay the new stream.

        Never raises and never waits past grace_s + REAP_WAIT_S: an FFmpeg that SIGKILL does not
        end (uninterruptible sleep on a hung disk or network share) ends the job FAILED with why,
        and False is returned (the caller keeps it counted until it ends: JobManager's dying).
        Not to be called with a lock others wait on held."""
        proc = self._request_stop()
        if proc is not None and proc.poll() is None:
            if not kill_now:
                self._signal(signal.SIGTERM)
                self.resume()  # a paused FFmpeg would hold the SIGTERM until continued
                try:
                    proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    log.warning("job %s: FFmpeg pid %d ignored SIGTERM for %.1fs, killing it",
                                self.job.job_id, proc.pid, grace_s, extra={"job_id": self.job.job_id})
            if proc.poll() is None:
                self._signal(signal.SIGKILL)
                try:
                    proc.wait(REAP_WAIT_S)
                except subprocess.TimeoutExpired:
                    self._unkillable(proc)
                    return False
        self.join(REAP_WAIT_S)
        return True

    def abandon(self):
        """Stop FFmpeg without waiting for it (a lock is held: the job's next run starts now): its
        group gets SIGKILL, what it had listed is put in place, and nothing more of it from then on
        (Collector.abandon), so the next run owns the job's folder at once. This thread reaps it;
        ended() says when."""
        proc = self._request_stop()
        if proc is not None and proc.poll() is None:
            self._signal(signal.SIGKILL)
            self._signal(signal.SIGCONT)  # a paused FFmpeg ends at once too
        self.job.collect()  # what it listed before the kill is whole: kept
        self.job.collector.abandon()

    def ended(self):
        """True once FFmpeg has exited and been reaped (or never started)."""
        if self.is_alive() and self._proc is None:
            return False  # not spawned yet
        return self._proc is None or self._proc.poll() is not None

    def _request_stop(self):
        """Mark the stop asked (STARTING/RUNNING -> STOPPING); FFmpeg's Popen once spawned."""
        with self.job.changed:
            self._stop_requested = True
            if self.job.state in WRITING_STATES:  # STARTING/RUNNING -> STOPPING
                self.job.change_state(JobState.STOPPING)
        if self.is_alive():
            self.wait_spawned()
        return self._proc

    def _unkillable(self, proc):
        reason = (f"FFmpeg pid {proc.pid} did not end {REAP_WAIT_S:g}s after SIGKILL (uninterruptible sleep: "
                  "a hung disk or network share?); its slot stays taken until it ends")
        log.error("job %s: %s", self.job.job_id, reason, extra={"job_id": self.job.job_id})
        with self.job.changed:
            if self.job.state not in ENDED_STATES:  # STOPPING -> FAILED: the heartbeat says why
                self.job.change_state(JobState.FAILED, error=reason, stderr_tail=list(self.stderr_tail))

    def pause(self):
        """SIGSTOP FFmpeg's group (throttling: it is far ahead of every player). True if paused."""
        with self.job.changed:
            if self.job.paused or self._stop_requested or self._proc is None or self.job.state not in WRITING_STATES:
                return False
            self._signal(signal.SIGSTOP)
            self.job.paused = True
        return True

    def resume(self):
        """SIGCONT FFmpeg's group; its progress clock restarts, so the pause is never a stall (nor
        a slow stretch to the speed guard)."""
        with self.job.changed:
            if not self.job.paused:
                return False
            if self._proc is not None:
                self._signal(signal.SIGCONT)
            self.job.paused = self.job.held = False
            self.job.last_progress_at = time.monotonic()
            self.job.samples.clear()  # the speed guard measures from here: the pause is not slowness
        return True

    def kill_stalled(self, reason):
        """FFmpeg is alive but stuck (or its job cannot go on): SIGKILL it; the job ends FAILED
        with `reason`, which wakes any player waiting on it."""
        with self.job.changed:
            if self._stop_requested or self._proc is None or self.job.state not in WRITING_STATES:
                return False
            if self._failure is not None:  # killed already, and not ended: FAILED once it will not
                if time.monotonic() - self._killed_at > REAP_WAIT_S and self._proc.poll() is None:
                    self._unkillable(self._proc)
                return False
            self._failure = reason
            self._killed_at = time.monotonic()
            self._signal(signal.SIGKILL)
        log.warning("job %s: %s", self.job.job_id, reason, extra={"job_id": self.job.job_id})
        return True

    def _signal(self, sig):
        # The whole group: FFmpeg and anything it started. Only while not yet reaped, so the
        # pid (= group id) cannot have been reused by another process.
        if self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                pass
