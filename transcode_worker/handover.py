"""A job a player asks this worker for, which it does not hold: a stream moving here.

A player that opened a film through the orchestrator has every worker of the pool as a pathway
(orchestrator/steering.py). When it cannot reach the worker that holds its job, it asks the next
one, this one, for the same names. The orchestrator says what to do (a claim): take the job (its
holder is gone), or send the player to the holder (it answers). Taken, the job starts here with
its command, its first run at the segment the player asked for: segment k is the same pictures
at the same times on any worker, so the player goes on as if nothing happened.

Requests for one job come together (the video's playlist, its audio's, a segment): one asks, the
others wait for that answer. "No such job" is kept a moment, so a player (or a scan) naming jobs
nobody has costs the orchestrator one call a job, not one a request; "held elsewhere" is not kept:
the holder may have died since, and a player sent to a dead worker stops (hls.js does not retry a
refused connection).
"""
import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

from .orchestrator_client import OrchestratorClient, Unreachable

log = logging.getLogger(__name__)

CLAIM_TIMEOUT_S = (1.0, 5.0)  # connect, read: the orchestrator answers within 3 s (its probe, a placement)
ASKING = 8  # requests that may wait on the orchestrator at once: the others are 503 at once
UNANSWERED_FOR_S = 1.0
UNKNOWN_FOR_S = 10.0  # how long "no such job" holds (a holder may die any moment: that is asked each time)
MAX_KEPT = 4096


@dataclass(frozen=True)
class Answer:
    kind: str  # take, elsewhere, unknown, unanswered
    command: dict | None = None  # take: the job command
    url: str = ""  # elsewhere: the URL of the worker that holds the job
    message: str = ""


class Handover:
    def __init__(self, settings, client=None):
        self.client = client or OrchestratorClient(settings.orchestrator_url, settings.worker_id,
                                                   settings.api_token, timeout=CLAIM_TIMEOUT_S)
        self._lock = threading.Lock()
        self._turns = {}  # job id -> [lock, requests holding or waiting for it]
        self._kept = OrderedDict()  # job id -> (Answer, until)
        self._asking = threading.BoundedSemaphore(ASKING)  # request threads stay free for players

    @contextmanager
    def turn(self, job_id):
        """Held by the one request of `job_id` that asks (and takes the job); the others wait."""
        with self._lock:
            entry = self._turns.setdefault(job_id, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if not entry[1]:
                    del self._turns[job_id]

    def ask(self, job_id):
        """What to do with a request for `job_id` (an Answer); called inside turn(job_id)."""
        with self._lock:
            kept = self._kept.get(job_id)
            if kept is not None and time.monotonic() < kept[1]:
                return kept[0]
        if not self._asking.acquire(blocking=False):
            return Answer("unanswered", message="too many requests for jobs held elsewhere wait on the orchestrator")
        try:
            status, body = self.client.claim(job_id)
        except Unreachable as exc:
            self._release_soon(job_id, f"its claim was not answered in time ({exc})")  # (perhaps it was taken)
            return self._keep(job_id, Answer("unanswered", message=f"the orchestrator did not answer: {exc}"))
        finally:
            self._asking.release()
        if status == 200 and isinstance(body.get("command"), dict):
            log.warning("job %s: taken over (a player came here from a worker that is gone)", job_id,
                        extra={"job_id": job_id})
            return Answer("take", command=body["command"])
        if status == 409 and isinstance(body.get("holder_url"), str):
            return Answer("elsewhere", url=body["holder_url"].rstrip("/"))
        if status != 404 or "job" not in str(body.get("error", "")):
            return self._keep(job_id, Answer("unanswered", message=f"the orchestrator answered HTTP {status}: "
                                                                   f"{body.get('error')}"))
        return self._keep(job_id, Answer("unknown", message=body.get("error", "no such job")))

    def _keep(self, job_id, answer):
        """Keep `answer` (unknown, unanswered) a while: a player's requests come together."""
        with self._lock:
            self._kept[job_id] = (answer, time.monotonic() + (UNKNOWN_FOR_S if answer.kind == "unknown"
                                                               else UNANSWERED_FOR_S))
            self._kept.move_to_end(job_id)
            while len(self._kept) > MAX_KEPT:
                self._kept.popitem(last=False)
        return answer

    def _release_soon(self, job_id, reason):
        threading.Thread(target=self.release, args=(job_id, reason), name="release", daemon=True).start()

    def release(self, job_id, reason):
        """A job taken with ask() could not start here: the orchestrator moves it on."""
        try:
            self.client.release(job_id, reason)
        except Unreachable as exc:
            log.warning("job %s: could not hand it back to the orchestrator: %s", job_id, exc,
                        extra={"job_id": job_id})

    def close(self):
        self.client.close()
