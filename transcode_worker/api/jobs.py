"""Job commands from the orchestrator: create/update, inspect, delete.

The job API is for programs, never for web pages: a page on any site a viewer visits can make
the browser send requests to a worker on the viewer's network. So a job command is JSON only
(a browser sends ``application/json`` cross-site only after a CORS preflight, and no answer
under /v1/ allows one), and a request that changes anything while carrying an ``Origin`` other
than the worker's own (its advertise_url's) is refused: browsers send ``Origin`` with every such
request, programs send none. The Host header never counts as the worker's own origin: a page
that DNS rebinding pointed at the worker sends its own name in both Host and Origin. For the
same reason every /v1/ request, reads included, must name a Host the worker is known by (400
otherwise): a rebound page could read the jobs and what the library holds.
"""
import dataclasses
import hmac
import json
from functools import lru_cache

from flask import Blueprint, jsonify, request
from marshmallow import ValidationError

from ..jobs import Refused
from ..origins import foreign_host, foreign_origin, machine_names, origin_of
from ..schemas import load_job_command, seek_time
from ..validation import FieldErrors, validate_command
from . import context

bp = Blueprint("jobs", __name__)

JSON_TYPE = "application/json"  # parameters (charset) allowed


def error(status, message, retry_after=None, **extra):
    response = jsonify(error=message, **extra)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def refuse_foreign_origin():
    """403 for a state-changing request (a CORS preflight too) sent on behalf of another site."""
    origin = request.headers.get("Origin")
    if foreign_origin(request.method, origin, context().settings.advertise_url):
        return error(403, f"the job API does not take requests from web pages (Origin: {origin[:200]})")
    return None


@lru_cache(maxsize=4)
def own_host_names(advertise_url, listen_host, allowed_hosts):
    """The names the job API answers to: advertise_url's host, the listen address, this
    machine's names and addresses (loopback included), and the allowed_hosts setting."""
    names = {origin_of(advertise_url)[1], listen_host.strip("[]").lower(), *allowed_hosts}
    return frozenset(names | machine_names())


def refuse_foreign_host():
    """400 for any request to the job API whose Host is not one the worker is reached by, the
    way Django's ALLOWED_HOSTS does: a page that DNS rebinding pointed at the worker may send
    GETs as its own site and read the answers (the jobs, what the library holds)."""
    settings = context().settings
    names = own_host_names(settings.advertise_url, settings.listen_host, tuple(settings.allowed_hosts))
    if foreign_host(request.host, names):
        return error(400, f"the job API does not answer to the host {request.host[:200]!r}: "
                          "add it to allowed_hosts if the worker is reached by that name")
    return None


bp.before_request(refuse_foreign_origin)
bp.before_request(refuse_foreign_host)


@bp.before_request
def require_token():
    token = context().settings.api_token
    if not token:
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    response = error(401, "missing or wrong bearer token")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _job_body(job):
    return job.to_dict(context().settings.advertise_url)


class Unaccepted(Exception):
    """A job command that was not taken: `response` says why (400, 422, 503...)."""

    def __init__(self, response):
        super().__init__(response.get_json().get("error"))
        self.response = response


def carry_out(data, at_segment=None):
    """Take the job command `data` (a dict): (job, started), or Unaccepted. `at_segment`: the
    segment a player asks for (a job taken over from another worker): the run starts there."""
    ctx = context()
    if not ctx.capabilities.ffmpeg_ok:
        raise Unaccepted(error(503, f"FFmpeg ({ctx.settings.ffmpeg_path}) cannot be run on this worker", retry_after=60))
    try:
        command = load_job_command(data)
        ctx.manager.admit(command["job_id"])  # at capacity: 503 before the source is even probed
        spec = validate_command(command, ctx.settings, ctx.capabilities, ctx.library.info)
        if at_segment is not None and at_segment < len(grid := ctx.manager.plan_of(spec).grid):
            # (its middle: a time in milliseconds that falls inside it)
            spec = dataclasses.replace(spec, seek_time=seek_time((grid.start(at_segment) + grid.end(at_segment)) / 2))
    except ValidationError as err:
        raise Unaccepted(error(422, "invalid job command", fields=err.messages)) from None
    except FieldErrors as err:
        raise Unaccepted(error(422, "invalid job command", fields=err.errors)) from None
    except Refused as exc:
        raise Unaccepted(error(exc.status, str(exc), retry_after=exc.retry_after)) from None
    try:
        return ctx.manager.submit(spec)
    except Refused as exc:
        raise Unaccepted(error(exc.status, str(exc), retry_after=exc.retry_after)) from None


@bp.post("/v1/jobs")
def submit():
    """Create a job, keep it (same command: 200), or restart it (changed command: 202)."""
    ctx = context()
    if request.mimetype != JSON_TYPE:  # a form or text/plain: what a page sends without a preflight
        return error(415, f"a job command is JSON: send it with Content-Type: {JSON_TYPE}",
                     content_type=JSON_TYPE)
    try:
        data = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return error(400, "the body is not JSON")
    if not isinstance(data, dict):
        return error(400, "the body must be a JSON object")
    before = ctx.manager.get(data.get("job_id")) if isinstance(data.get("job_id"), str) else None
    try:
        job, started = carry_out(data)
    except Unaccepted as exc:
        return exc.response
    body = _job_body(job)
    if started:  # an audio or subtitle choice, or a seek to what is made, runs no new FFmpeg
        body["video_restarted"] = job is not before
    response = jsonify(body)
    response.status_code = 202 if started else 200
    response.headers["Location"] = f"/v1/jobs/{job.job_id}"
    return response


@bp.post("/v1/workers/<worker_id>/heartbeats")
def submit_alias(worker_id):
    """The endpoint map lists the job controller under this path too."""
    if worker_id != context().settings.worker_id:
        return error(404, f"this is worker {context().settings.worker_id!r}, not {worker_id!r}")
    return submit()


@bp.get("/v1/jobs")
def list_jobs():
    ctx = context()
    return {
        "worker_id": ctx.settings.worker_id,
        "active_jobs": ctx.manager.active_count(),
        "max_concurrent_jobs": ctx.settings.max_concurrent_jobs,
        "jobs": [_job_body(job) for job in ctx.manager.jobs()],
    }


@bp.get("/v1/jobs/<job_id>")
def get_job(job_id):
    job = context().manager.get(job_id)
    return _job_body(job) if job is not None else error(404, f"no job {job_id!r}")


@bp.delete("/v1/jobs/<job_id>")
def delete_job(job_id):
    if not context().manager.delete(job_id):
        return error(404, f"no job {job_id!r}")
    return {"job_id": job_id, "deleted": True}
