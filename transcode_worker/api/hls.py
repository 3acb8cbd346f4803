"""HLS for players: `<job_id>.m3u8` and `<job_id>_<n>.ts`, nothing else.

A player that comes before FFmpeg has written what it asks for waits (bounded by
playlist_wait_s) instead of getting a 404 it would give up on; it is answered at once when the
job can no longer write it.
"""
import re
import time

from flask import Blueprint, Response, abort, send_file

from ..jobs import resume_due
from ..playlist import for_players, target_duration
from ..states import JobState, WRITING_STATES
from . import context
from .jobs import error

bp = Blueprint("hls", __name__)

PLAYLIST_NAME = re.compile(r"^([A-Za-z0-9_-]{1,64})\.m3u8$")
SEGMENT_NAME = re.compile(r"^([A-Za-z0-9_-]{1,64})_(\d{1,9})\.ts$")
POLL_S = 0.02  # how often a waiting request looks for the file; a job's end wakes it at once
NO_CACHE = "no-cache"


@bp.after_request
def cors(response):
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Range"
    response.headers["Access-Control-Expose-Headers"] = "Content-Length, Content-Range, Accept-Ranges"
    return response


@bp.route("/<name>", methods=["GET", "HEAD"])
def hls_file(name):
    if match := PLAYLIST_NAME.match(name):
        return _measured("playlist", match.group(1), _playlist)
    if match := SEGMENT_NAME.match(name):
        number = int(match.group(2))
        return _measured("segment", match.group(1), lambda job: _segment(job, number), number)
    abort(404)


def _measured(kind, job_id, serve, segment=None):
    started = time.perf_counter()
    response = _wait_and_serve(job_id, serve, segment)
    if response.status_code in (200, 206):
        metrics = context().metrics
        metrics.segment_wait.labels(kind).observe(time.perf_counter() - started)
        metrics.bytes_served.inc(response.content_length or 0)
        if kind == "segment":
            metrics.segments_served.inc()
    return response


def _wait_and_serve(job_id, serve, segment=None):
    """Call serve(job) until it answers, the job cannot write any more, or the wait runs out."""
    manager, settings = context().manager, context().settings
    deadline = time.monotonic() + settings.playlist_wait_s
    while True:
        job = manager.get(job_id)  # again each time: a seek replaces the job
        if job is None:
            abort(404)
        job.record_request(segment)  # a player is watching: the janitor leaves the job alone
        if resume_due(job, settings.throttle_lead_s):
            job.supervisor.resume()  # a player came near: continue now, not at the next sweep
        response = serve(job)
        if response is not None:
            return response
        if job.state not in WRITING_STATES:
            if job.state is JobState.FAILED:
                return error(404, f"job {job_id} failed: {job.error}")
            abort(404)
        remaining = deadline - time.monotonic()
        if manager.closing:  # the worker is stopping: do not hold the shutdown up
            return error(503, "the worker is shutting down", retry_after=1)
        if remaining <= 0:
            return error(503, f"job {job_id} has not written it yet", retry_after=1)
        job.wait_changed(min(POLL_S, remaining))


def _playlist(job):
    try:
        text = (job.folder / job.output.playlist).read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return None
    if not job.record_playlist(text):
        return None
    target_s = target_duration(job.output.segment_s, job.spec.force_remux)
    text = for_players(text, target_s, completed=job.state is JobState.COMPLETED)
    response = Response(text, mimetype="application/vnd.apple.mpegurl")
    response.headers["Cache-Control"] = NO_CACHE  # it grows while FFmpeg runs
    return response


def _segment(job, number):
    if number < job.output.start_number:  # from before a seek: gone for good
        abort(404)
    try:
        response = send_file(job.folder / f"{job.job_id}_{number}.ts", mimetype="video/mp2t", conditional=True)
    except FileNotFoundError:
        return None
    # Names are reused only if a job id is: revalidating (a cheap 304) keeps players safe then.
    response.headers["Cache-Control"] = NO_CACHE
    return response
