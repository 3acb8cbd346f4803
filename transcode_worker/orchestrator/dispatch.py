"""Putting jobs on workers and moving them when a worker is lost.

Dispatcher.place() asks select_worker() for the best worker and posts the job command to it;
a worker that does not answer or refuses for want of room is skipped for the next best. A job
whose worker is lost is re-queued at its last known position (``seek_time``) under the same id,
on another worker; when none fits it waits as QUEUED and the monitor tries again each round.
"""
import logging
import os
import threading
import time
from functools import lru_cache

import requests

from .. import media
from ..schemas import seek_time
from .selection import select_worker
from .store import OFFLINE, QUEUED

log = logging.getLogger(__name__)

# jobs that still need a worker when theirs is lost (a COMPLETED job's segments went with it too)
MOVABLE_STATES = ("STARTING", "RUNNING", "COMPLETED", QUEUED)


class NoWorker(Exception):
    """No worker took the job; `status` and `body` are what the caller should answer."""

    def __init__(self, status, reason, body=None):
        super().__init__(reason)
        self.status = status
        self.body = body or {"error": reason}




@lru_cache(maxsize=1024)
def _codec(path, size, mtime_ns):
    try:
        return media.run_ffprobe("ffprobe", path).video.codec
    except media.ProbeError:
        return None


def needs_hevc(source_path):
    """True when the source is HEVC, as far as this machine can see it (the NAS may be mounted
    only on the workers: then nothing is assumed)."""
    try:
        st = os.stat(source_path)
    except OSError:
        return False
    return _codec(source_path, st.st_size, st.st_mtime_ns) == "hevc"


class Dispatcher:
    def __init__(self, settings, store):
        self.settings = settings
        self.store = store
        self.http = requests.Session()
        if settings.api_token:
            self.http.headers["Authorization"] = f"Bearer {settings.api_token}"
        self._lock = threading.Lock()  # one placement at a time: two plays never race for one slot

    # -- calls to a worker --------------------------------------------------------------------
    def _post_job(self, worker, body):
        response = self.http.post(worker["url"].rstrip("/") + "/v1/jobs", json=body,
                                  timeout=self.settings.worker_timeout_s)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"error": response.text[:300]}

    def delete_on_worker(self, worker_id, job_id):
        worker = self.store.worker(worker_id) if worker_id else None
        if worker is None:
            return None
        try:
            return self.http.delete(f"{worker['url'].rstrip('/')}/v1/jobs/{job_id}",
                                    timeout=self.settings.worker_timeout_s).status_code
        except requests.RequestException as exc:
            log.warning("job %s: DELETE on worker %s failed: %s", job_id, worker_id, exc)
            return None

    # -- placing ------------------------------------------------------------------------------
    def place(self, job_id, source_path, configuration, *, client_ip=None, exclude=()):
        """Start the job on the best worker that accepts it; returns the worker's job body."""
        with self._lock:
            return self._place(job_id, source_path, configuration, client_ip, set(exclude))

    def _place(self, job_id, source_path, configuration, client_ip, tried):
        hevc = needs_hevc(source_path)
        refusal = None
        while True:
            choice = select_worker(
                self.store.workers(), time.time(), seen_within_s=self.settings.seen_within_s,
                needs_hevc=hevc, encoder=configuration.get("encoder"), client_ip=client_ip,
                prefer_same_subnet=self.settings.prefer_same_subnet, exclude=tried)
            worker = choice.worker
            if worker is None:
                if refusal is not None:  # a worker judged the command itself: pass its answer on
                    raise NoWorker(*refusal)
                raise NoWorker(503, choice.reason)
            tried.add(worker["id"])
            answer = self.command(worker, job_id, source_path, configuration)
            if answer is True:
                # count it now: the next play must not pick this slot before the next heartbeat
                self.store.bump_active_jobs(worker["id"])
                return worker, self.store.job(job_id)
            if answer:
                refusal = answer

    def command(self, worker, job_id, source_path, configuration):
        """Post the job command to `worker`: True when it took the job (the store follows), else
        None, or (status, message, body) when it judged the command itself (a 4xx)."""
        command = {"job_id": job_id, "source_path": source_path, "configuration": configuration}
        try:
            status, body = self._post_job(worker, command)
        except requests.RequestException as exc:
            log.warning("worker %s did not take job %s: %s", worker["id"], job_id, exc)
            return None
        if status in (200, 202):
            self.store.update_job(job_id, worker_id=worker["id"], state=body.get("state", "STARTING"),
                                  playlist_url=body.get("playlist_url"), configuration=configuration,
                                  position_s=body.get("position_s") or 0.0, error=None, reported_at=None)
            log.info("job %s: on worker %s (%s)", job_id, worker["id"], body.get("playlist_url"))
            return True
        log.warning("worker %s refused job %s: HTTP %d %s", worker["id"], job_id, status, body)
        if 400 <= status < 500 and status not in (401, 409):
            return status, body.get("error", "refused"), body
        return None

    # -- healing ------------------------------------------------------------------------------
    def requeue(self, job, why, exclude=()):
        """Move `job` (a store row) to another worker at its last known position."""
        configuration = {**job["configuration"], "seek_time": seek_time(job["position_s"] or 0.0)}
        # counted first: whoever sees the job on its new worker sees the re-queue counted too
        self.store.update_job(job["id"], requeues=job["requeues"] + 1)
        try:
            worker, _ = self.place(job["id"], job["source_path"], configuration, exclude=exclude)
        except NoWorker as exc:
            self.store.update_job(job["id"], state=QUEUED, worker_id=None, playlist_url=None, error=str(exc))
            log.warning("job %s: %s; no worker for it yet (%s): queued", job["id"], why, exc)
            return False
        log.warning("job %s: %s; re-queued on %s at %s", job["id"], why, worker["id"], configuration["seek_time"])
        return True

    def worker_lost(self, worker_id, why):
        """Take the worker off the pool and move every job it held."""
        self.store.set_offline(worker_id, why)
        for job in self.store.jobs(worker_id=worker_id, states=MOVABLE_STATES):
            self.requeue(job, f"worker {worker_id} {why}", exclude={worker_id})

    def check(self, started_at, now=None):
        """One round of the monitor: silent workers go OFFLINE; queued jobs try again."""
        now = time.time() if now is None else now
        for worker in self.store.workers():
            # the orchestrator's own downtime is not the workers' silence
            silent = now - max(worker["last_seen"], started_at)
            if worker["status"] != OFFLINE and silent > self.settings.offline_after_s:
                self.worker_lost(worker["id"], f"silent for {silent:.0f}s")
        for job in self.store.jobs(states=(QUEUED,)):
            if job["worker_id"] is None:
                self.requeue(job, "waiting for a worker")
