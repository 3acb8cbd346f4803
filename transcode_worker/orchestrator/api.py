"""The orchestrator's HTTP API: one blueprint for workers (the endpoint map's outbound calls),
one for players and programs (play, seek, stop, state).

Only ``GET /play`` is open to web pages (CORS): it is what a player is sent to; with api_token
set, it takes signed links only (links.py), which a program mints with ``POST /v1/play-links``. A call that
changes something takes ``application/json`` only and no foreign ``Origin``: a page may send a
text/plain or form POST to any site without asking first (no CORS preflight), and a browser names
the page's origin on every cross-site POST, where programs (the workers, curl, requests) send none.
"""
import hmac
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, jsonify, redirect, request
from marshmallow import EXCLUDE, ValidationError

from ..origins import SAFE_METHODS, foreign_host, foreign_origin
from ..schemas import ConfigurationSchema, DeathNoteSchema, HeartbeatSchema, RegistrationSchema, seek_seconds
from .config import own_host_names, own_origins
from . import links
from .dispatch import NoWorker
from .streams import stream_url

workers_bp = Blueprint("workers", __name__)
play_bp = Blueprint("play", __name__)


def ctx():
    return current_app.extensions["transcode_orchestrator"]


def error(status, message, **extra):
    response = jsonify(error=message, **extra)
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = "5"
    return response


def _authorised():
    token = ctx().settings.api_token
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


PLAYER_CORS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
    ("Access-Control-Expose-Headers", "X-Job-Id"),
)
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _foreign_origin():
    """True when a browser sent this request from a page of another origin than the
    orchestrator's own (public_url's, or listen's): `Origin: null`, a sandboxed page or a file,
    included. The Host header is no evidence: DNS rebinding makes a page's Host its own domain."""
    settings = ctx().settings
    return foreign_origin(request.method, request.headers.get("Origin"),
                          own_origins(settings.public_url, settings.listen))


def _cross_site_refusal():
    """403 for a call that would change something from another site's page (and for its
    preflight), 415 for a body that is not JSON, 400 for a read sent to a host name that is not
    the orchestrator's (a DNS-rebound page would read the workers and the jobs); None when the
    call may go on."""
    if request.method in SAFE_METHODS:
        settings = ctx().settings
        if foreign_host(request.host, own_host_names(settings.public_url, settings.listen)):
            return error(400, f"the API does not answer to the host {request.host[:200]!r}: set public_url "
                              "to the URL the orchestrator is reached at")
        return None
    if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
        if _foreign_origin():  # no Access-Control-Allow-* in the answer: the browser stops here
            return error(403, "cross-origin calls to the API are not allowed (only GET /play is open to pages)")
    elif request.method in CHANGES:
        if _foreign_origin():
            return error(403, "a call from another origin's page is refused: send it from a program")
        if request.method != "DELETE" and request.mimetype != "application/json":
            return error(415, "the body must be JSON (Content-Type: application/json)")
    return None


@workers_bp.before_request
def guard_worker_calls():
    refusal = _cross_site_refusal()
    if refusal is None and not _authorised():
        return error(401, "missing or wrong bearer token")
    return refusal


def _for_players():
    """/play: open to players and their pages (CORS): a TV cannot send a token (the streams it
    leads to are streams.py's)."""
    return request.path == "/play"


@play_bp.before_request
def guard_player_calls():
    if _for_players():
        return None
    refusal = _cross_site_refusal()
    if refusal is None and not _authorised():  # /v1/* controls jobs and needs the token
        return error(401, "missing or wrong bearer token")
    return refusal


@play_bp.after_request
def player_cors(response):
    if _for_players():
        response.headers.update(PLAYER_CORS)
    return response


def _body():
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes (silent covers ValueError only)
        return None
    return data if isinstance(data, dict) else None


def _known_worker_payload(worker_id, schema, what):
    """(payload, None) for a registered worker's valid body, else (None, the 404/422 answer)."""
    if ctx().store.worker(worker_id) is None:
        return None, error(404, f"unknown worker {worker_id}: register first")
    try:
        return schema(unknown=EXCLUDE).load(_body() or {}), None
    except ValidationError as err:
        return None, error(422, f"invalid {what}", fields=err.messages)


# -- worker -> orchestrator ------------------------------------------------------------------
@workers_bp.post("/v1/workers")
def register():
    try:
        reg = RegistrationSchema(unknown=EXCLUDE).load(_body() or {})
    except ValidationError as err:
        return error(422, "invalid registration", fields=err.messages)
    c = ctx()
    c.dispatcher.heard_from(reg["id"])
    c.store.register_worker(reg)
    lost = set(reg["lost_jobs"])
    for job in c.store.jobs(worker_id=reg["id"]):
        if job["id"] in lost:
            c.dispatcher.requeue(job, f"lost by worker {reg['id']} (it restarted)")
    return jsonify(id=reg["id"], registered=True), 201


@workers_bp.post("/v1/workers/<worker_id>/heartbeats")
def heartbeat(worker_id):
    beat, failure = _known_worker_payload(worker_id, HeartbeatSchema, "heartbeat")
    if failure is not None:
        return failure
    c = ctx()
    if not beat["replayed"]:  # a replay is history, not a sign of life
        c.dispatcher.heard_from(worker_id)
        c.store.record_heartbeat(worker_id, beat)
    recorded = beat["recorded_at"]
    strays = []
    for context in beat["jobs"]:
        job = c.store.job(context["active_job_id"])
        if job is None or job["worker_id"] != worker_id:
            if not beat["replayed"] and context["state"] in ("STARTING", "RUNNING"):
                strays.append(context["active_job_id"])
            continue  # deleted, or moved to another worker since: not this worker's to run
        if job["reported_at"] and datetime.fromisoformat(job["reported_at"]) > recorded:
            continue  # an older record than what we know (a replay after a live heartbeat)
        c.store.update_job(job["id"], state=context["state"], progress=context["progress"],
                           position_s=context["position_s"], watched_s=context["watched_s"], speed=context["speed"],
                           last_segment_id=context["last_segment_id"], error=context["error"],
                           reported_at=recorded.isoformat())
    if strays:
        c.dispatcher.disown(worker_id, strays)
    return "", 204


@workers_bp.patch("/v1/workers/<worker_id>")
def death_note(worker_id):
    note, failure = _known_worker_payload(worker_id, DeathNoteSchema, "death note")
    if failure is not None:
        return failure
    why = note["reason"] if not note.get("message") else f"{note['reason']}: {note['message']}"
    ctx().dispatcher.worker_lost(worker_id, f"went offline ({why})")
    return "", 204


@workers_bp.post("/v1/jobs/<job_id>/claim")
def claim(job_id):
    """A worker a player asked for a job it does not hold: 200 {"command"} when it is to take the
    job now, 409 {"holder_url"} when the player is to be sent to the worker that holds it."""
    body = _body() or {}
    worker_id = body.get("worker_id")
    if not isinstance(worker_id, str) or ctx().store.worker(worker_id) is None:
        return error(404, f"unknown worker {str(worker_id)[:64]!r}: register first")
    try:
        kind, what = ctx().dispatcher.claim(job_id, worker_id)
    except NoWorker as exc:
        return error(exc.status, str(exc))
    if kind == "elsewhere":
        return error(409, f"job {job_id} is held by a worker that answers", holder_url=what)
    return jsonify(command=what)


@workers_bp.post("/v1/jobs/<job_id>/release")
def release(job_id):
    """The worker that claimed the job could not start it: it goes to another."""
    body = _body() or {}
    worker_id = body.get("worker_id")
    if not isinstance(worker_id, str) or ctx().store.worker(worker_id) is None:
        return error(404, f"unknown worker {str(worker_id)[:64]!r}: register first")
    ctx().dispatcher.release(job_id, worker_id, str(body.get("reason", "no reason given"))[:500])
    return "", 204


@workers_bp.get("/v1/workers")
def list_workers():
    now = time.time()
    return jsonify(workers=[{
        "id": w["id"], "url": w["url"], "status": w["status"], "reason": w["reason"],
        "active_jobs": w["active_jobs"], "max_concurrent_jobs": w["max_concurrent_jobs"],
        "hardware_acceleration": w["static_specs"].get("hardware_acceleration", []),
        "encoders": w["encoders"], "telemetry": w["telemetry"], "version": w["version"],
        "last_seen": _iso(w["last_seen"]), "seen_s_ago": round(now - w["last_seen"], 1),
    } for w in ctx().store.workers()])


# -- players and programs --------------------------------------------------------------------
def _job_view(job):
    return {"job_id": job["id"], "worker_id": job["worker_id"], "state": job["state"],
            "progress": job["progress"], "position_s": job["position_s"], "speed": job["speed"],
            "last_segment_id": job["last_segment_id"], "playlist_url": stream_url(job["id"]),
            "worker_playlist_url": job["playlist_url"],
            "source_path": job["source_path"], "configuration": job["configuration"],
            "requeues": job["requeues"], "error": job["error"]}


def _start(source_path, configuration):
    """Create a job and place it; returns (job row, None) or (None, error response)."""
    try:
        configuration = ConfigurationSchema().load(configuration or {})
    except ValidationError as err:
        return None, error(422, "invalid configuration", fields={"configuration": err.messages})
    configuration = {k: v for k, v in configuration.items() if v is not None}
    c = ctx()
    configuration.setdefault("bitrate_bps", c.settings.default_bitrate_bps)
    # the grid is the pool's, not one worker's: a moved stream goes on with the same segments
    configuration.setdefault("segment_duration_s", c.settings.segment_duration_s)
    configuration.setdefault("first_segment_s", c.settings.first_segment_s)
    job_id = uuid.uuid4().hex[:16]
    c.store.add_job(job_id, source_path, configuration)
    try:
        c.dispatcher.place(job_id, source_path, configuration, client_ip=request.remote_addr)
    except NoWorker as exc:
        c.store.delete_job(job_id)
        return None, error(exc.status, str(exc), **{k: v for k, v in exc.body.items() if k != "error"})
    return c.store.job(job_id), None


def _known_job(job_id):
    """The job's record; a 404 answers the request when there is none."""
    job = ctx().store.job(job_id)
    if job is None:
        abort(error(404, "unknown job"))
    return job


# What /play reads of its query (and a signed link carries): text, whole numbers, flags
PLAY_TEXT = ("seek_time", "encoder", "audio_language")
PLAY_NUMBERS = ("bitrate_bps", "audio_stream", "subtitle_stream")
PLAY_FLAGS = ("force_remux", "burn_subtitles")


@play_bp.get("/play")
def play():
    """GET /play?path=<source> starts a job and redirects the player to its playlist;
    GET /play?job_id=<id> redirects to wherever the job is now (after a failover, a seek).
    With api_token set, only a signed link (links.py) is taken: 403 before anything starts."""
    if ctx().settings.api_token and request.method != "OPTIONS":  # (a preflight carries no query)
        try:
            links.check(ctx().settings.api_token, request.args)
        except links.Unsigned as exc:
            return error(403, str(exc))
    if request.method == "HEAD":  # a player asking what it will get (Shaka, for a URL without .m3u8): starts nothing
        return current_app.response_class(mimetype="application/vnd.apple.mpegurl")
    if request.args.get("job_id"):
        return redirect(stream_url(_known_job(request.args["job_id"])["id"]), code=302)
    path = request.args.get("path")
    if not path:
        return error(400, "give ?path=<source_path> (or ?job_id=<id>)")
    configuration = {}
    for key in PLAY_TEXT:
        if key in request.args:
            configuration[key] = request.args[key]
    for key in PLAY_NUMBERS:
        if key in request.args:
            if not request.args[key].isdigit():
                return error(422, "invalid configuration", fields={"configuration": {key: ["Not a valid integer."]}})
            configuration[key] = int(request.args[key])
    for key in PLAY_FLAGS:
        if request.args.get(key) in ("1", "true"):
            configuration[key] = True
    job, failure = _start(path, configuration)
    if failure is not None:
        return failure
    response = redirect(stream_url(job["id"]), code=302)
    response.headers["X-Job-Id"] = job["id"]
    return response


@play_bp.post("/v1/play-links")
def play_link():
    """A /play link a TV or a page can open (POST {"source_path" or "job_id", "configuration",
    "expires_in_s"}, bearer token): 201 {"url", "expires_at"}; signed with api_token when it is set."""
    body = _body()
    if body is None or not isinstance(body.get("source_path", body.get("job_id")), str):
        return error(400, "the body must be a JSON object with source_path (or job_id)")
    expires_in_s = body.get("expires_in_s", links.DEFAULT_EXPIRES_IN_S)
    if not isinstance(expires_in_s, int) or isinstance(expires_in_s, bool) or not 0 < expires_in_s <= links.MAX_EXPIRES_IN_S:
        return error(422, "invalid play link", fields={"expires_in_s": [
            f"a whole number of seconds from 1 to {links.MAX_EXPIRES_IN_S}"]})
    configuration = body.get("configuration") or {}
    wrong = {key: ["Unknown field."] for key in configuration if key not in (*PLAY_TEXT, *PLAY_NUMBERS, *PLAY_FLAGS)} \
        if isinstance(configuration, dict) else {"configuration": ["Not a valid mapping type."]}
    if not wrong:
        try:
            ConfigurationSchema(unknown=EXCLUDE).load(configuration)
        except ValidationError as err:
            wrong = err.messages
    if wrong:
        return error(422, "invalid configuration", fields={"configuration": wrong})
    pairs = [("job_id", body["job_id"])] if "source_path" not in body else [("path", body["source_path"])]
    for key, value in configuration.items():
        if key in PLAY_FLAGS:
            if value:
                pairs.append((key, "1"))
        else:
            pairs.append((key, str(value)))
    token = ctx().settings.api_token
    now = time.time()
    query = links.mint(token, pairs, expires_in_s, now) if token else urlencode(pairs)
    base = (ctx().settings.public_url or request.host_url).rstrip("/")
    return jsonify(url=f"{base}/play?{query}", expires_at=_iso(now + expires_in_s) if token else None), 201


@play_bp.post("/v1/play")
def play_json():
    body = _body()
    if body is None or not isinstance(body.get("source_path"), str):
        return error(400, "the body must be a JSON object with source_path")
    job, failure = _start(body["source_path"], body.get("configuration"))
    if failure is not None:
        return failure
    return jsonify(job_id=job["id"], worker_id=job["worker_id"], playlist_url=stream_url(job["id"]),
                   worker_playlist_url=job["playlist_url"]), 201


@play_bp.get("/v1/jobs")
def list_jobs():
    return jsonify(jobs=[_job_view(job) for job in ctx().store.jobs()])


@play_bp.get("/v1/jobs/<job_id>")
def job_state(job_id):
    return jsonify(_job_view(_known_job(job_id)))


@play_bp.post("/v1/jobs/<job_id>/seek")
def seek(job_id):
    c = ctx()
    job = _known_job(job_id)
    body = _body() or {}
    try:
        wanted = ConfigurationSchema().load({"seek_time": body.get("seek_time")})["seek_time"]
    except ValidationError as err:
        return error(422, "invalid seek", fields=err.messages)
    configuration = {**job["configuration"], "seek_time": wanted}
    holder = c.store.worker(job["worker_id"]) if job["worker_id"] else None
    try:  # the holder first: there a seek is a restart at the new position (allowed even at capacity)
        c.dispatcher.place(job_id, job["source_path"], configuration, holder=holder)
    except NoWorker as exc:
        return error(exc.status, str(exc))
    c.store.update_job(job_id, position_s=seek_seconds(wanted), progress=None)
    return jsonify(_job_view(c.store.job(job_id)))


@play_bp.delete("/v1/jobs/<job_id>")
def stop(job_id):
    c = ctx()
    job = _known_job(job_id)
    c.dispatcher.delete_on_worker(job["worker_id"], job_id)
    c.store.delete_job(job_id)
    return jsonify(job_id=job_id, deleted=True)


def _iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
