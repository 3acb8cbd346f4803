"""The orchestrator link: registration, heartbeats, the spool while the orchestrator is down, and
the death note. One named thread ("heartbeat") does all the talking; nothing here blocks a request.

The loop, every heartbeat_interval_s (with a little jitter, so a rack of workers restarted together
does not beat in step):
- not registered yet (start, or a 404 to a heartbeat): register, with backoff until accepted;
- build a heartbeat from telemetry, jobs and health; send it live when the link is up and the
  spool is empty, else append it to the spool;
- when a delivery attempt is due, replay the spool oldest first, each record marked replayed and
  with the time it was recorded; only then do live heartbeats resume.
Backoff doubles from 1 s up to BACKOFF_CAP_BEATS intervals (at most 60 s): no busy loop.
"""
import logging
import random
import threading
import time
from collections import deque
from datetime import datetime, timezone

from . import __version__
from .orchestrator_client import OrchestratorClient, Unreachable
from .states import ACTIVE_STATES, ENDED_STATES
from .status import Thresholds, decide_status
from .telemetry import Telemetry, static_specs

log = logging.getLogger(__name__)

JITTER = 0.05              # +-5 % of the interval
BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_BEATS = 6      # the backoff never exceeds this many heartbeat intervals...
BACKOFF_CAP_S = 60.0       # ...nor a minute
DEATH_NOTE_TIMEOUT_S = 3.0


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def job_context(job):
    """One job as the heartbeat carries it (the seeds' job_context, plus state and position)."""
    with job.changed:
        return {
            "active_job_id": job.job_id,
            "progress": job.progress,
            "speed": job.speed,
            "last_segment_id": job.last_segment_id,
            "state": job.state.value,
            "position_s": round(job.position_s, 3),
            "error": job.error,
            "speed_guard": job.guard_report(),
            "watched_s": round(job.watched_position(), 3) if job.last_requested is not None else None,
        }


def registration_payload(settings, capabilities, lost_jobs, unclean_restart):
    return {
        "id": settings.worker_id,
        "static_specs": static_specs(capabilities),
        "url": settings.advertise_url,
        "max_concurrent_jobs": settings.max_concurrent_jobs,
        "version": __version__,
        "encoders": list(capabilities.encoders),
        "lost_jobs": list(lost_jobs),
        "unclean_restart": unclean_restart,
    }


def heartbeat_payload(telemetry, jobs, ended, problems, thresholds, stuck=()):
    """The heartbeat (pure): `jobs` are the worker's current jobs, `ended` the contexts of jobs
    that ended since the last heartbeat (each reported once, so a spooled history is complete),
    `stuck` why FFmpeg processes SIGKILL did not end hold slots (JobManager.stuck: STRESSED)."""
    active = [job_context(j) for j in sorted(jobs, key=lambda j: j.created_at) if j.state in ACTIVE_STATES]
    behind = [f"job {j.job_id} cannot keep up: {j.guard.reason}" for j in jobs
              if j.guard is not None and j.guard.stressed and j.state in ACTIVE_STATES]
    status, reason = decide_status(telemetry, len(active), problems, thresholds, behind + list(stuck))
    return {
        "status": status.value,
        "reason": reason,
        "telemetry": telemetry,
        "job_context": active[-1] if active else None,  # the most recently started active job
        "active_jobs": len(active),
        "jobs": active + list(ended),
        "recorded_at": now_iso(),
    }


class Heartbeat(threading.Thread):
    def __init__(self, settings, capabilities, manager, health, runstate, spool, *,
                 client=None, telemetry=None):
        super().__init__(name="heartbeat", daemon=True)
        self.settings = settings
        self.capabilities = capabilities
        self.manager = manager
        self.health = health
        self.runstate = runstate
        self.spool = spool
        self.client = client or OrchestratorClient(settings.orchestrator_url, settings.worker_id,
                                                   settings.api_token)
        self.telemetry = telemetry or Telemetry()
        self.thresholds = Thresholds.from_settings(settings)
        self.interval_s = settings.heartbeat_interval_s
        self.registered = False
        self.link_up = False
        self.sent = 0
        self.failures = 0
        self._ended = deque(maxlen=1000)
        self._stopping = threading.Event()
        self._backoff_s = BACKOFF_FIRST_S
        self._retry_at = 0.0
        self._next_beat = 0.0  # monotonic time of the next live heartbeat
        manager.add_listener(self._job_changed)

    # -- job transitions (called with the job's lock held: only note it) ----------------------
    def _job_changed(self, job, old, new):
        # a run the speed guard replaced did not end the job: its next run goes on with it
        if new in ENDED_STATES and old not in ENDED_STATES and not job.superseded:
            self._ended.append(job_context(job))

    # -- the thread ---------------------------------------------------------------------------
    def run(self):
        log.info("orchestrator %s: registering as %s", self.settings.orchestrator_url, self.settings.worker_id)
        self._next_beat = time.monotonic()
        while not self._stopping.is_set():
            try:
                if time.monotonic() >= self._retry_at and (not self.registered or len(self.spool)):
                    self._deliver()
                if time.monotonic() >= self._next_beat:
                    self._next_beat = time.monotonic() + self.interval_s * random.uniform(1 - JITTER, 1 + JITTER)
                    self._beat()
            except Exception:  # the link must outlive any surprise; the next round tries again
                log.exception("heartbeat round failed")
                self._schedule_retry()
            due = self._next_beat
            if not self.registered or len(self.spool):
                due = min(due, self._retry_at)
            self._stopping.wait(max(0.05, due - time.monotonic()))

    def stop(self, timeout=None):
        self._stopping.set()
        if self.is_alive():
            self.join(timeout if timeout is not None else DEATH_NOTE_TIMEOUT_S + 2)

    def _payload(self):
        ended = []
        while self._ended:
            ended.append(self._ended.popleft())
        payload = heartbeat_payload(self.telemetry.collect(), self.manager.jobs(), ended,
                                    self.health.problems, self.thresholds, self.manager.stuck())
        if self.spool.dropped:
            payload["spool_dropped"] = self.spool.dropped
        return payload

    def _beat(self):
        """The live heartbeat, sent at once whenever the orchestrator is reachable, a spool being
        replayed or not (each record carries recorded_at: an older replayed one never overwrites
        it); spooled while it is not."""
        payload = self._payload()
        if self.registered and self.link_up:
            try:
                code = self.client.heartbeat(payload)
            except Unreachable as exc:
                self._went_down(exc)
            else:
                if code == 404:  # the orchestrator forgot us (it restarted, or timed us out)
                    log.warning("orchestrator does not know this worker: registering again")
                    self.registered = False
                    self._retry_at = 0.0
                elif code < 300:
                    self.sent += 1
                    return
                else:
                    self.failures += 1
                    return  # refused (4xx): replaying it would be refused again
        self.spool.append(payload)

    def _deliver(self):
        """Register if needed, then replay the spool in order; stop at the first failure, and
        whenever a live heartbeat is due (it goes first; the replay goes on after it)."""
        try:
            if not self.registered:
                self._register()
                if not self.registered:
                    self._schedule_retry()
                    return
            while (item := self.spool.oldest()) is not None:
                if self.link_up and time.monotonic() >= self._next_beat:
                    return
                name, record = item
                code = self.client.heartbeat({**record, "replayed": True})
                if code == 404:
                    self.registered = False
                    self._retry_at = 0.0
                    return
                if code >= 300:
                    log.warning("orchestrator refused a spooled heartbeat (HTTP %d): dropped", code)
                self.spool.remove(name)
                self._reachable()
        except Unreachable as exc:
            self._went_down(exc)
            return
        self._reachable()

    def _reachable(self):
        if not self.link_up:
            log.info("orchestrator reachable again")
        self.link_up = True
        self._backoff_s = BACKOFF_FIRST_S

    def _register(self):
        lost = list(self.runstate.lost_jobs)
        payload = registration_payload(self.settings, self.capabilities, lost, self.runstate.unclean_restart)
        code = self.client.register(payload)
        if code < 300:
            self.registered = self.link_up = True
            self._backoff_s = BACKOFF_FIRST_S
            log.info("registered with the orchestrator%s", f" (lost jobs reported: {', '.join(lost)})" if lost else "")
            if lost:
                self.runstate.lost_jobs_reported()
            self.runstate.unclean_restart = False
        else:
            self.failures += 1
            log.warning("orchestrator refused the registration (HTTP %d); retrying in %.0fs", code, self._backoff_s)

    def _went_down(self, exc):
        self.failures += 1
        if self.link_up or self._backoff_s == BACKOFF_FIRST_S:
            log.warning("orchestrator unreachable (%s): heartbeats go to the spool", exc)
        self.link_up = False
        self._schedule_retry()

    def _schedule_retry(self):
        self._retry_at = time.monotonic() + self._backoff_s * random.uniform(1 - JITTER, 1 + JITTER)
        cap = min(BACKOFF_CAP_S, BACKOFF_CAP_BEATS * self.interval_s)
        self._backoff_s = min(cap, self._backoff_s * 2)

    # -- the death note -----------------------------------------------------------------------
    def death_note(self, reason, message=None):
        """PATCH the worker OFFLINE (first thing on a shutdown). One bounded try: shutdown must not hang."""
        note = {"status": "OFFLINE", "reason": reason}
        if message:
            note["message"] = message
        try:
            code = self.client.death_note(note, timeout=DEATH_NOTE_TIMEOUT_S)
            log.info("death note sent (%s): HTTP %d", reason, code)
            return code < 300
        except Unreachable as exc:
            log.warning("death note (%s) not delivered: %s", reason, exc)
            return False
