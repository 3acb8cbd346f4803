"""The stream a player holds, whichever worker makes it (steering.py says how).

- ``/streams/<job>.m3u8``: the job's multivariant playlist, on the pool's pathway, made once from
  its holder's (kept in the database: a VOD stream's never changes, and a restarted orchestrator
  still steers its players);
- ``/streams/<job>.steering.json``: the steering manifest, the holder first;
- ``/streams/<job>/<name>``: a media playlist of the job, its segments on this route (kept in
  memory); any other name (a segment, an init segment, WebVTT) is redirected to the worker that
  holds the job now. A holder that does not answer is taken off the pool there and then, and the
  job placed on another worker: a player's retry of a segment lands on the survivor.

Open to players and their pages (CORS), like a worker's segments: a TV cannot send a token, and
a stream's URL names its job (64 random bits).
"""
import logging
import re
import threading
import time
from collections import OrderedDict

import requests
from flask import Blueprint, current_app, jsonify, redirect, request

from . import steering
from .dispatch import NoWorker, PLACING_WAIT_S
from .store import OFFLINE

log = logging.getLogger(__name__)

streams_bp = Blueprint("streams", __name__)
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}[A-Za-z0-9._-]{0,64}")  # what a worker names a job's files
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
CORS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
    ("Access-Control-Allow-Headers", "Range"),
)
MEDIA_PLAYLISTS_KEPT = 512


def ctx():
    return current_app.extensions["transcode_orchestrator"]


def error(status, message):
    response = jsonify(error=message)
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


@streams_bp.after_request
def cors(response):
    response.headers.update(CORS)
    return response


def stream_url(job_id):
    """What a player opens: the job's steered playlist, whichever worker holds it."""
    return f"{_own_url()}/streams/{job_id}.m3u8"


def _own_url():
    return (ctx().settings.public_url or request.host_url).rstrip("/")


def _job(job_id):
    job = ctx().store.job(job_id)
    if job is None:
        raise NoWorker(404, "unknown job")
    return job


class MediaPlaylists:
    """The steered media playlists of the jobs (LRU, bounded): one fetch from a worker, however
    many players open the stream."""

    def __init__(self, size=MEDIA_PLAYLISTS_KEPT):
        self.size = size
        self._texts = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._texts:
                self._texts.move_to_end(key)
            return self._texts.get(key)

    def put(self, key, text):
        with self._lock:
            self._texts[key] = text
            while len(self._texts) > self.size:
                self._texts.popitem(last=False)


def live_holder(job):
    """The worker that holds `job` and answers. One that does not is taken off the pool (its jobs
    move, this one too), and the job's next holder is waited for: NoWorker when none comes."""
    c = ctx()
    deadline = time.monotonic() + PLACING_WAIT_S
    while True:
        now = c.store.job(job["id"])
        if now is None:
            raise NoWorker(404, "unknown job (deleted)")
        holder = c.store.worker(now["worker_id"]) if now["worker_id"] else None
        if holder is not None and holder["status"] != OFFLINE:
            if c.dispatcher.alive(holder, fresh=False):
                return holder
            c.dispatcher.lose_soon(holder["id"], f"did not answer when a player asked for job {job['id']}")
        elif holder is None:  # queued: this player wants it now, not at the monitor's next round
            if not c.dispatcher.requeue(now, "a player asked for it"):
                raise NoWorker(503, f"job {job['id']} is waiting for a worker ({(c.store.job(job['id']) or {}).get('error')})")
        if time.monotonic() > deadline:
            raise NoWorker(503, f"job {job['id']} is moving to another worker")
        time.sleep(0.05)


class Unserved(Exception):
    """What a player is answered instead (`response`): the job or its holder failed it."""

    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response


def _holders(job, name, steer):
    """The holder's playlist `name` of `job`, steered by steer(text); Unserved when it cannot be had."""
    try:
        status, text = ctx().dispatcher.fetch_text(live_holder(job), f"/{name}")
        if status != 200:
            raise Unserved(error(status if status in (404, 503) else 502,
                                 f"the worker holding job {job['id']} answered HTTP {status}"))
        return steer(text)
    except NoWorker as exc:
        raise Unserved(error(exc.status, str(exc))) from None
    except requests.RequestException as exc:
        raise Unserved(error(503, f"the worker holding job {job['id']} did not answer: {exc}")) from None
    except ValueError as exc:
        raise Unserved(error(502, f"the worker's playlist could not be read: {exc}")) from None


@streams_bp.get("/streams/<job_id>.m3u8")
def stream(job_id):
    """The job's multivariant playlist, steered (made once, from its holder's)."""
    c = ctx()
    try:
        job = _job(job_id)
        text = c.store.stream_text(job_id, steering.POOL)
        if text is None:
            text = c.store.keep_stream_text(job_id, steering.POOL, _holders(job, f"{job_id}.m3u8", lambda text: (
                steering.steered_multivariant(text, f"{_own_url()}/streams/{job_id}", steering.POOL,
                                              f"{job_id}.steering.json"))))
    except NoWorker as exc:
        return error(exc.status, str(exc))
    except Unserved as exc:
        return exc.response
    return _playlist(text)


@streams_bp.get("/streams/<job_id>.steering.json")
def steering_manifest(job_id):
    """Where the job's player should fetch from now (HLS Content Steering): the holder first."""
    c = ctx()
    job = c.store.job(job_id)
    steered = c.store.stream_text(job_id, steering.POOL) if job is not None else None
    if steered is None:
        return error(404, "unknown stream")
    workers = [(w["id"], w["url"]) for w in c.dispatcher.candidates(job)]
    response = jsonify(steering.steering_manifest(steering.POOL, workers, steered))
    response.headers["Cache-Control"] = "no-store"
    return response


@streams_bp.get("/streams/<job_id>/<name>")
def stream_file(job_id, name):
    """A media playlist of the job (its segments on this route), or a redirect of any other file
    to the worker that holds the job now."""
    if not NAME.fullmatch(name) or not name.startswith(job_id):
        return error(404, "not a file of this stream")
    c = ctx()
    try:
        job = _job(job_id)
        if not name.endswith(".m3u8"):
            return redirect(f"{live_holder(job)['url'].rstrip('/')}/{name}", code=302)
        text = c.media_playlists.get((job_id, name))
        if text is None:
            text = _holders(job, name, lambda text: steering.steered_media(text, f"{_own_url()}/streams/{job_id}"))
            c.media_playlists.put((job_id, name), text)
    except NoWorker as exc:
        return error(exc.status, str(exc))
    except Unserved as exc:
        return exc.response
    return _playlist(text)


def _playlist(text):
    response = current_app.response_class(text, mimetype=PLAYLIST_TYPE)
    response.headers["Cache-Control"] = "no-cache"
    return response
