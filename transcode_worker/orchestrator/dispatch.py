"""Putting jobs on workers and moving them when a worker is lost.

Dispatcher.place() asks select_worker() for the best worker and posts the job command to it;
a worker that does not answer or refuses for want of room is skipped for the next best. A job
whose worker is lost is re-queued at its last known position (``seek_time``) under the same id,
on another worker; when none fits it waits as QUEUED and the monitor tries again each round.

What a source is (HEVC or not: a worker that decodes HEVC comes first) is asked of a worker,
``GET /v1/media``, never probed here: the files may be mounted on the workers only, and a path a
viewer names (a device, a FIFO) must cost the orchestrator nothing. The worker that says there is
no such file, or none it may play, is answered through to the player.

The dispatcher's lock guards its bookkeeping only (the slots being taken, the jobs being placed):
no lock is held across a call to a worker, and every call has a deadline for its whole answer.

A worker's silence (OFFLINE, and placement's ``seen_within_s``) is measured on time.monotonic(),
from when this process last heard from it: the stored ``last_seen`` is wall-clock time, for people,
and an NTP step would make the whole pool silent at once (forward) or hide a dead worker (back).
"""
import json
import logging
import posixpath
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager

import requests
import urllib3

from ..schemas import seek_time
from .selection import can_decode_hevc, select_worker
from .store import OFFLINE, QUEUED

ALIVE_TIMEOUT_S = 0.5  # a worker on the same network answers /healthz in milliseconds
SILENT_S = 10.0  # a worker that answers too slowly is gone only when its heartbeats stopped this long
PLACING_WAIT_S = 2.5  # a claim waits this long for a placement of the job under way (the worker
# that asks waits 5 s: a claim's answer, the probe included, comes before it stops listening)
DEAD_FOR_S = 1.0  # how long a worker that did not answer /healthz is taken as still dead
ALIVE_FOR_S = 0.5  # how long one that answered is taken as alive, for a redirect (not a claim)

log = logging.getLogger(__name__)

# jobs that still need a worker when theirs is lost (a COMPLETED job's segments went with it too)
MOVABLE_STATES = ("STARTING", "RUNNING", "COMPLETED", QUEUED)
ENDED_KEPT_S = 86400.0  # an ended job (and its stream's URL) is forgotten a day after it was last heard of
MAX_ANSWER_BYTES = 1 << 20  # a worker's answer (a job's state, a source's tracks) is a few KiB


class NoWorker(Exception):
    """No worker took the job; `status` and `body` are what the caller should answer."""

    def __init__(self, status, reason, body=None):
        super().__init__(reason)
        self.status = status
        self.body = body or {"error": reason}


class JobBusy(NoWorker):
    """Another request is placing this job right now (a seek during a re-queue)."""

    def __init__(self, job_id):
        super().__init__(409, f"job {job_id} is being placed on a worker right now; try again")


def resume_at(job):
    """Where a moved job starts: where its viewer is (the segment a player asked for last), else
    where its run was (the seeds' re-queue "at its progress")."""
    return job["watched_s"] if job.get("watched_s") is not None else job["position_s"] or 0.0


def path_key(path):
    """The path made lexically plain, so that its spellings (``/dev/./ptmx``, ``//dev//ptmx``,
    ``/dev/x/../ptmx``) are one key. Only text: the orchestrator never looks at the path."""
    plain = posixpath.normpath(path)
    return "/" + plain.lstrip("/") if plain.startswith("/") else plain


class SourceFacts:
    """What workers said sources are (the video codec), bounded and expiring, keyed by path_key().

    A hint for the selection only: the worker that gets the job resolves the path itself."""

    def __init__(self, size=1024, ttl_s=300.0, clock=time.monotonic):
        self.size, self.ttl_s, self.clock = size, ttl_s, clock
        self._entries = OrderedDict()  # key -> (codec, when)
        self._lock = threading.Lock()

    def get(self, path):
        key = path_key(path)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self.clock() - entry[1] > self.ttl_s:
                self._entries.pop(key, None)
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, path, codec):
        with self._lock:
            self._entries[path_key(path)] = (codec, self.clock())
            self._entries.move_to_end(path_key(path))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self):
        return len(self._entries)


class Dispatcher:
    def __init__(self, settings, store):
        self.settings = settings
        self.store = store
        self.facts = SourceFacts()
        self.http = requests.Session()
        if settings.api_token:
            self.http.headers["Authorization"] = f"Bearer {settings.api_token}"
        # held for bookkeeping only, never across a call to a worker: two plays never take the
        # same last slot, and one job is placed by one request at a time
        self._lock = threading.Lock()
        self._taking = {}  # worker id -> job commands posted there and not answered yet
        self._placing = set()  # ids of the jobs being placed
        self._closing = threading.Event()
        # the orchestrator's own start: its downtime is not the workers' silence
        self.started_at = time.monotonic()
        self._heard = {}  # worker id -> time.monotonic() when last heard from (single item reads, writes)
        self._unanswered = {}  # worker id -> time.monotonic() when it last did not answer /healthz
        self._answered = {}  # worker id -> time.monotonic() when it last answered /healthz
        self._losing = set()  # workers being taken off the pool (lose_soon)
        self._threads = set()  # started by _background()

    def close(self):
        """The orchestrator is stopping: placements end at their next step, and calls with it."""
        self._closing.set()
        self.http.close()

    def heard_from(self, worker_id):
        """The worker said something live (a registration, a heartbeat). Called before the store
        records it, so that the monitor never sees a fresh row with an old silence."""
        self._heard[worker_id] = time.monotonic()

    def heard(self, worker_id):
        """When the worker was last heard from, on time.monotonic(); not since this process
        started: its start (after a restart the workers get their full time to be heard)."""
        return self._heard.get(worker_id, self.started_at)

    # -- calls to a worker --------------------------------------------------------------------
    def _call(self, method, worker, path, **kwargs):
        """(status, JSON object) of one call to `worker` (_fetch)."""
        status, data = self._fetch(method, worker, path, **kwargs)
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        return status, body if isinstance(body, dict) else {"error": data[:300].decode(errors="replace")}

    def fetch_text(self, worker, path):
        """(status, text) of a GET of `path` on `worker` (a playlist)."""
        status, data = self._fetch("GET", worker, path)
        return status, data.decode("utf-8", errors="replace")

    def _fetch(self, method, worker, path, **kwargs):
        """(status, body bytes) of one call to `worker`, the whole answer within
        worker_timeout_s: requests' timeout bounds each read only, so a worker that trickles
        its answer would hold the caller as long as it liked. RequestException otherwise."""
        limit = self.settings.worker_timeout_s
        deadline = time.monotonic() + limit
        url = worker["url"].rstrip("/") + path
        with self.http.request(method, url, timeout=limit, stream=True, **kwargs) as response:
            data = bytearray()
            try:
                while chunk := response.raw.read1(64 * 1024, decode_content=True):  # what has come
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise requests.RequestException(f"{url}: an answer over {MAX_ANSWER_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise requests.Timeout(f"{url}: no whole answer within {limit:g}s")
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise requests.ConnectionError(f"{url}: {exc}") from exc
            return response.status_code, bytes(data)

    def describe(self, worker, source_path):
        """What `worker` says the source is: its ``GET /v1/media`` answer (a dict); a refusal
        (status, reason, body) when it says there is no such file (404) or none it may play
        (422: outside its roots, not a regular file, not media); None when it did not answer in
        time or answered something else (skipped like an unreachable worker)."""
        try:
            status, body = self._call("GET", worker, "/v1/media", params={"source_path": source_path})
        except requests.RequestException as exc:
            log.warning("worker %s did not say what %r is: %s", worker["id"], source_path, exc)
            return None
        if status == 200:
            return body
        if status in (404, 422) and "source_path" in (body.get("fields") or {}):
            return status, body.get("error", "refused"), body
        log.warning("worker %s did not say what %r is: HTTP %d %s", worker["id"], source_path, status, body)
        return None

    def delete_on_worker(self, worker_id, job_id):
        worker = self.store.worker(worker_id) if worker_id else None
        if worker is None:
            return None
        try:
            return self._call("DELETE", worker, f"/v1/jobs/{job_id}")[0]
        except requests.RequestException as exc:
            log.warning("job %s: DELETE on worker %s failed: %s", job_id, worker_id, exc)
            return None

    # -- placing ------------------------------------------------------------------------------
    @contextmanager
    def _claim(self, job_id):
        """This request places `job_id`; JobBusy when another one is at it."""
        with self._lock:
            if job_id in self._placing:
                raise JobBusy(job_id)
            self._placing.add(job_id)
        try:
            yield
        finally:
            with self._lock:
                self._placing.discard(job_id)

    def _take_slot(self, tried, hevc, configuration, client_ip):
        """The best worker not in `tried` (a Choice), counted as taking a job until _give_back():
        commands on their way count like the active jobs the heartbeats report."""
        with self._lock:  # the store's reads are local and quick; no call to a worker in here
            # last_seen on the monotonic clock for the choice: a step of the wall clock moves nobody
            workers = [{**w, "active_jobs": w["active_jobs"] + self._taking.get(w["id"], 0),
                        "last_seen": self.heard(w["id"])} for w in self.store.workers()]
            choice = select_worker(
                workers, time.monotonic(), seen_within_s=self.settings.seen_within_s, needs_hevc=bool(hevc),
                encoder=configuration.get("encoder"), client_ip=client_ip,
                prefer_same_subnet=self.settings.prefer_same_subnet, exclude=tried)
            if choice.worker is not None:
                self._taking[choice.worker["id"]] = self._taking.get(choice.worker["id"], 0) + 1
            return choice

    def _give_back(self, worker_id, took):
        with self._lock:
            self._taking[worker_id] -= 1
            if not self._taking[worker_id]:
                del self._taking[worker_id]
            if took:  # count it now: the next play must not pick this slot before the next heartbeat
                self.store.bump_active_jobs(worker_id)

    def place(self, job_id, source_path, configuration, *, client_ip=None, exclude=(), holder=None):
        """Start the job on the best worker that accepts it; returns (worker, job row).

        `holder`, the worker that has the job now (a seek), is asked first, even when full:
        there a seek is a restart at the new position. NoWorker when none takes it."""
        with self._claim(job_id):
            return self._place(job_id, source_path, configuration, client_ip, set(exclude), holder)

    def _place(self, job_id, source_path, configuration, client_ip, tried, holder=None):
        refusal = None
        if holder is not None:
            tried.add(holder["id"])
            if holder["status"] != OFFLINE:
                answer = self.command(holder, job_id, source_path, configuration)
                if answer is True:
                    return holder, self.store.job(job_id)
                refusal = answer or None
        codec = self.facts.get(source_path)  # None: not known yet; asked of the first candidate
        while True:
            if self._closing.is_set():
                raise NoWorker(503, "the orchestrator is stopping")
            choice = self._take_slot(tried, codec == "hevc", configuration, client_ip)
            worker = choice.worker
            if worker is None:
                if refusal is not None:  # a worker judged the source or the command: pass its answer on
                    raise NoWorker(*refusal)
                raise NoWorker(503, choice.reason)
            answer = None
            try:
                if codec is None:
                    facts = self.describe(worker, source_path)
                    if not isinstance(facts, dict):
                        tried.add(worker["id"])
                        refusal = facts or refusal
                        continue
                    codec = (facts.get("video") or {}).get("codec") or ""
                    self.facts.put(source_path, codec)
                    if codec == "hevc" and not can_decode_hevc(worker):
                        continue  # choose again, knowing: a worker that decodes HEVC comes first
                tried.add(worker["id"])
                answer = self.command(worker, job_id, source_path, configuration)
            finally:
                self._give_back(worker["id"], took=answer is True)
            if answer is True:
                return worker, self.store.job(job_id)
            if answer:
                refusal = answer

    def command(self, worker, job_id, source_path, configuration):
        """Post the job command to `worker`: True when it took the job (the store follows), else
        None, or (status, message, body) when it judged the command itself (a 4xx)."""
        command = {"job_id": job_id, "source_path": source_path, "configuration": configuration}
        try:
            status, body = self._call("POST", worker, "/v1/jobs", json=command)
        except requests.RequestException as exc:
            log.warning("worker %s did not take job %s: %s", worker["id"], job_id, exc)
            return None
        if status in (200, 202):
            if not self.store.update_job(job_id, worker_id=worker["id"], state=body.get("state", "STARTING"),
                                         playlist_url=body.get("playlist_url"), configuration=configuration,
                                         position_s=body.get("position_s") or 0.0, error=None, reported_at=None):
                # DELETE /v1/jobs/<id> came while the command was on its way: nobody wants it
                self.delete_on_worker(worker["id"], job_id)
                raise NoWorker(404, "unknown job (deleted while it was being placed)")
            log.info("job %s: on worker %s (%s)", job_id, worker["id"], body.get("playlist_url"))
            return True
        log.warning("worker %s refused job %s: HTTP %d %s", worker["id"], job_id, status, body)
        if 400 <= status < 500 and status not in (401, 409):
            return status, body.get("error", "refused"), body
        return None

    # -- streams that outlive their worker (steering.py) ----------------------------------------
    def candidates(self, job):
        """The workers that could carry `job` (a store row) now, best first: its holder when it
        is available, then the others in the selection's order (available, with room, with the
        job's encoder). What a steered player's pathways are."""
        now = time.monotonic()
        workers = [{**w, "last_seen": self.heard(w["id"])} for w in self.store.workers()]
        ordered = [w for w in workers if w["id"] == job["worker_id"] and w["status"] not in ("OFFLINE", "ERROR")
                   and now - w["last_seen"] <= self.settings.seen_within_s]
        exclude = {w["id"] for w in ordered}
        while True:
            choice = select_worker(workers, now, seen_within_s=self.settings.seen_within_s,
                                   encoder=job["configuration"].get("encoder"), prefer_same_subnet=False,
                                   exclude=exclude)
            if choice.worker is None:
                return ordered
            ordered.append(choice.worker)
            exclude.add(choice.worker["id"])

    def alive(self, worker, fresh=True):
        """Whether `worker` is alive: it answers /healthz (200 within ALIVE_TIMEOUT_S; 503 is a
        worker shutting down). Refused or reset is dead at once; a slow answer is dead only when
        its heartbeats stopped too (SILENT_S): a worker busy encoding is slow, not gone. A
        worker's players ask this (a claim: `fresh`) when they could not reach it, and "alive"
        sends them back there: so it is asked anew. A redirect of a segment (not `fresh`) takes an
        answer up to ALIVE_FOR_S old: its player retries a failed segment later than that. "Dead"
        is kept DEAD_FOR_S (a worker's players come together)."""
        now = time.monotonic()
        if now - self._unanswered.get(worker["id"], -DEAD_FOR_S) < DEAD_FOR_S:
            return False
        if not fresh and now - self._answered.get(worker["id"], -ALIVE_FOR_S) < ALIVE_FOR_S:
            return True
        try:
            answer = requests.get(worker["url"].rstrip("/") + "/healthz", timeout=ALIVE_TIMEOUT_S)
            answer.close()
            alive = answer.status_code == 200
        except requests.Timeout:
            alive = time.monotonic() - self.heard(worker["id"]) < SILENT_S
        except requests.RequestException:
            alive = False
        (self._answered if alive else self._unanswered)[worker["id"]] = time.monotonic()
        return alive

    def lose_soon(self, worker_id, why):
        """worker_lost() on a thread of its own (once at a time per worker): a player waits."""
        with self._lock:
            if worker_id in self._losing:
                return
            self._losing.add(worker_id)

        def lose():
            try:
                self.worker_lost(worker_id, why)
            finally:
                with self._lock:
                    self._losing.discard(worker_id)
        self._background(lose, "worker-lost")

    def _background(self, target, name):
        """Run `target` on a thread of its own, waited for by join() before the store closes."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads = {t for t in self._threads if t.is_alive()} | {thread}
        thread.start()

    def join(self, timeout_s):
        """Wait (at most `timeout_s` in all) for the background threads: the orchestrator stops."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def claim(self, job_id, worker_id):
        """A player asked `worker_id` for `job_id`, which it does not hold (the player moved to that
        worker's pathway). Returns ("take", job command) when the job is now that worker's: its
        holder is gone (OFFLINE, or it does not answer: then it is taken off the pool, and its other
        jobs move), or the job waits for a worker; ("elsewhere", the holder's URL) when the holder
        is alive: the player is sent there. NoWorker: unknown job (404), still being placed after
        PLACING_WAIT_S (409): a placement under way (a re-queue after a death note) is waited for."""
        deadline = time.monotonic() + PLACING_WAIT_S
        while True:
            try:
                return self._claim_once(job_id, worker_id)
            except JobBusy:
                if time.monotonic() > deadline or self._closing.is_set():
                    raise
                time.sleep(0.05)

    def _claim_once(self, job_id, worker_id):
        job = self.store.job(job_id)
        if job is None:
            raise NoWorker(404, "unknown job")
        if job["state"] in ("STOPPED", "FAILED"):  # stopped (unwatched, deleted) or broken: open the film again
            raise NoWorker(404, f"job {job_id} has ended ({job['state']})")
        holder = self.store.worker(job["worker_id"]) if job["worker_id"] else None
        if holder is not None and holder["id"] != worker_id and holder["status"] != OFFLINE and self.alive(holder):
            return "elsewhere", holder["url"]
        claimer = self.store.worker(worker_id)
        if claimer is None or claimer["status"] in ("OFFLINE", "ERROR"):
            raise NoWorker(409, f"worker {worker_id} cannot take jobs now ({claimer and claimer['status']})")
        with self._claim(job_id):
            now = self.store.job(job_id)
            if now is None:
                raise NoWorker(404, "unknown job (deleted)")
            if now["worker_id"] != job["worker_id"]:  # moved meanwhile: go where it went
                moved = self.store.worker(now["worker_id"]) if now["worker_id"] else None
                if moved is not None and moved["id"] != worker_id:
                    return "elsewhere", moved["url"]
            configuration = {**now["configuration"], "seek_time": seek_time(resume_at(now))}
            if not self.store.update_job(job_id, worker_id=worker_id, state="STARTING", error=None, reported_at=None,
                                         playlist_url=f"{claimer['url'].rstrip('/')}/{job_id}.m3u8",
                                         requeues=now["requeues"] + (now["worker_id"] != worker_id)):
                raise NoWorker(404, "unknown job (deleted)")
        if holder is not None and holder["id"] != worker_id and holder["status"] != OFFLINE:
            # it did not answer: its other jobs move now too, without holding this player up
            self.lose_soon(holder["id"], f"did not answer when a player moved job {job_id} from it")
        log.warning("job %s: taken by worker %s, where its player went", job_id, worker_id)
        return "take", {"job_id": job_id, "source_path": now["source_path"], "configuration": configuration}

    def release(self, job_id, worker_id, why):
        """The worker that claimed `job_id` could not start it: it goes to another worker."""
        job = self.store.job(job_id)
        if job is not None and job["worker_id"] == worker_id:
            self.requeue(job, f"worker {worker_id} could not take it ({why})", exclude={worker_id})

    # -- healing ------------------------------------------------------------------------------
    def requeue(self, job, why, exclude=()):
        """Move `job` (a store row) to another worker at its last known position. Nothing is
        done when the job has moved or gone since the row was read, or is being placed."""
        try:
            with self._claim(job["id"]):
                now = self.store.job(job["id"])
                if now is None or now["worker_id"] != job["worker_id"]:
                    return False  # deleted, or placed by a seek since
                configuration = {**now["configuration"], "seek_time": seek_time(resume_at(now))}
                # counted first: whoever sees the job on its new worker sees the re-queue counted too
                self.store.update_job(job["id"], requeues=now["requeues"] + 1)
                try:
                    worker, _ = self._place(job["id"], now["source_path"], configuration, None, set(exclude))
                except NoWorker as exc:
                    self.store.update_job(job["id"], state=QUEUED, worker_id=None, playlist_url=None,
                                          error=str(exc))
                    log.warning("job %s: %s; no worker for it yet (%s): queued", job["id"], why, exc)
                    return False
        except JobBusy:
            log.info("job %s: %s; another request is placing it", job["id"], why)
            return False
        log.warning("job %s: %s; re-queued on %s at %s", job["id"], why, worker["id"], configuration["seek_time"])
        return True

    def disown(self, worker_id, job_ids):
        """`worker_id` reported running jobs that are not its own (moved while it was thought
        gone, or deleted): they are deleted there, on a thread of its own."""
        def delete():
            for job_id in job_ids:
                log.warning("job %s: worker %s still runs it, though it is not its own: deleting it there",
                            job_id, worker_id)
                self.delete_on_worker(worker_id, job_id)
        self._background(delete, "disown")

    def forget_ended(self, older_than_s, now=None):
        """Jobs that ended (stopped, failed, or made to the end) and were not heard of for
        `older_than_s` leave the database, with their streams: it does not grow for ever."""
        now = time.time() if now is None else now
        for job in self.store.jobs(states=("STOPPED", "FAILED", "COMPLETED")):
            if now - job["updated_at"] > older_than_s:
                self.store.delete_job(job["id"])

    def worker_lost(self, worker_id, why):
        """Take the worker off the pool and move every job it held."""
        self.store.set_offline(worker_id, why)
        for job in self.store.jobs(worker_id=worker_id, states=MOVABLE_STATES):
            self.requeue(job, f"worker {worker_id} {why}", exclude={worker_id})

    def check(self, now=None):
        """One round of the monitor: silent workers go OFFLINE; queued jobs try again.
        `now` is a time.monotonic() value, like heard()'s."""
        now = time.monotonic() if now is None else now
        for worker in self.store.workers():
            silent = now - self.heard(worker["id"])
            if worker["status"] != OFFLINE and silent > self.settings.offline_after_s:
                self.worker_lost(worker["id"], f"silent for {silent:.0f}s")
        for job in self.store.jobs(states=(QUEUED,)):
            if job["worker_id"] is None:
                self.requeue(job, "waiting for a worker")
        self.forget_ended(ENDED_KEPT_S)
