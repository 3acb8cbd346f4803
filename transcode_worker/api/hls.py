"""HLS for players: the names hls_names.py lists (multivariant and media playlists, MPEG-TS or
fMP4 segments, fMP4 init segments, WebVTT playlists and segments), nothing else.

A player that comes before FFmpeg has written what it asks for waits (bounded by
playlist_wait_s) instead of getting a 404 it would give up on; it is answered at once when the
job can no longer write it.

Almost every request is a player fetching a playlist or a whole segment that is ready: FastPath
answers those in front of Flask, whose dispatch costs more CPU than the sendfile that moves a
segment. The blueprint answers the rest (a segment or playlist to wait for, a byte range, a
revalidation, a 404) and in the same words: both build their answers from the functions below.
"""
import contextlib
import dataclasses
import os
import socket
import time

from urllib.parse import quote

from flask import Blueprint, Response, abort, request, send_file
from werkzeug.http import http_date
from werkzeug.wsgi import wrap_file

from .. import audio, front, grid, hls_names, multivariant, webvtt
from ..janitor import resume_due
from ..jobs import Refused
from ..playlist import media_playlist
from ..states import JobState, WRITING_STATES
from . import context
from .jobs import error
from .takeover import take_over_or_send_on

bp = Blueprint("hls", __name__)

POLL_S = 0.02  # how often a waiting request looks for the file; a job's end wakes it at once
ASK_AGAIN_S = 1.0  # how often a waiting request asks again whether the running FFmpeg will make it
NO_CACHE = "no-cache"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPES = {"ts": "video/mp2t", "m4s": "video/mp4", "mp4": "video/mp4"}
WEBVTT_TYPE = "text/vtt; charset=utf-8"
CORS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
    ("Access-Control-Allow-Headers", "Range"),
    ("Access-Control-Expose-Headers", "Content-Length, Content-Range, Accept-Ranges"),
)


@bp.after_request
def cors(response):
    response.headers.update(CORS)
    return response


class Unavailable(Exception):
    """The job will never have what was asked for: 404 with this message."""


def parse_name(name):
    """(kind, job_id, number, answer, rendition) for a name the worker serves, else None. kind:
    playlist or subtitle (answer(job) gives (headers, body) once it can be written, else None),
    segment (answer(job) gives the file's path, None for one the job never has); rendition: the
    audio rendition's name for its playlist and segments, else None."""
    if match := hls_names.MULTIVARIANT.fullmatch(name):
        return "playlist", match.group(1), None, multivariant_playlist, None
    if match := hls_names.MEDIA_PLAYLIST.fullmatch(name):
        return "playlist", match.group(1), None, playlist, None
    if match := hls_names.AUDIO_PLAYLIST.fullmatch(name):
        rendition = match.group(2)
        return "playlist", match.group(1), None, lambda job: audio_playlist(job, rendition), None
    if match := hls_names.AUDIO_SEGMENT.fullmatch(name):
        rendition, number, extension = match.group(2), int(match.group(3)), match.group(4)
        return ("segment", match.group(1), number, lambda job: audio_segment_path(job, rendition, number, extension),
                rendition)
    if match := hls_names.AUDIO_INIT.fullmatch(name):
        rendition = match.group(2)
        return "segment", match.group(1), None, lambda job: audio_init_path(job, rendition), rendition
    if match := hls_names.SUBTITLE_PLAYLIST.fullmatch(name):
        stream = int(match.group(2))
        return "playlist", match.group(1), None, lambda job: subtitle_playlist(job, stream), None
    if match := hls_names.SUBTITLE_SEGMENT.fullmatch(name):
        stream, number = int(match.group(2)), int(match.group(3))
        return "subtitle", match.group(1), number, lambda job: subtitle_segment(job, stream, number), None
    if match := hls_names.SEGMENT.fullmatch(name):
        number, extension = int(match.group(2)), match.group(3)
        return "segment", match.group(1), number, lambda job: segment_path(job, number, extension), None
    if match := hls_names.INIT.fullmatch(name):
        number = int(match.group(2))
        return "segment", match.group(1), None, lambda job: init_path(job, number), None
    return None


@bp.route("/<name>", methods=["GET", "HEAD"])
def hls_file(name):
    parsed = parse_name(name)
    if parsed is None:
        abort(404)
    kind, job_id, number, answer, rendition = parsed
    moved = take_over_or_send_on(job_id, name, number)  # a stream moving here from a worker that is gone
    if moved is not None:
        return moved
    manager = context().manager
    if kind == "segment" and rendition is not None:  # an audio rendition's: made by runs of its own
        # (its init segment comes with any segment: the one where the viewer is)
        want = lambda: manager.want_audio(job_id, rendition, number if number is not None else _viewer_at(job_id))
        return _measured(kind, job_id, lambda job: _segment_response(answer(job)), number, want=want,
                         follow=lambda job: _track(manager, job, rendition), rendition=rendition)
    if kind == "segment":
        want = (lambda: manager.want(job_id, number)) if number is not None else None
        return _measured(kind, job_id, lambda job: _segment_response(answer(job)), number, want=want)
    # a WebVTT segment can still come after FFmpeg has finished: while its track is extracted
    pending = extracting if kind == "subtitle" else None
    return _measured("playlist" if kind == "playlist" else "segment", job_id,
                     lambda job: _playlist_response(job, answer), number, pending)


ENDPOINT = f"{bp.name}.{hls_file.__name__}"  # the request metrics' label, on either path


def _viewer_at(job_id):
    """The segment the job's viewer is at (where a player asked last, else the seek)."""
    job = context().manager.get(job_id)
    return job.grid.segment_at(job.watched_position()) if job is not None else 0


def _track(manager, job, rendition):
    track = manager.audio_track(job, rendition)
    if track is None:
        abort(404)
    return track


def _measured(kind, job_id, serve, segment=None, pending=None, want=None, follow=None, rendition=None):
    started = time.perf_counter()
    response = _wait_and_serve(job_id, serve, segment, pending, want, follow, rendition)
    if response.status_code in (200, 206):
        context().metrics.observe_served(kind, started, response.content_length)
    return response


def _watched(job, segment, settings, rendition=None):
    job.record_request(segment)  # a player is watching: the janitor leaves the job alone
    if resume_due(job, settings.throttle_lead_s):
        job.supervisor.resume()  # a player came near: continue now, not at the next sweep
    track = job.audio.get(rendition) if rendition is not None else None
    if track is not None:  # and its audio rendition
        track.record_request(segment)
        run = track.run
        if run is not None and resume_due(run, audio.lead_limit(settings.throttle_lead_s)):
            run.supervisor.resume()


def _shutting_down():
    """The answer to a player waiting on a worker that is stopping: in a pool, 410, so a steered
    player moves to another worker at once (hls.js retries a 5xx on the same one for seconds);
    standalone, 503 (the worker comes back)."""
    if context().handover is not None:
        return error(410, "this worker is shutting down: the stream goes on from another worker")
    return error(503, "the worker is shutting down", retry_after=1)


def _wait_and_serve(job_id, serve, segment=None, pending=None, want=None, follow=None, rendition=None):
    """Call serve(job) until it answers, the job cannot write any more (nor `pending(job)` say
    it is still coming), or the wait runs out. `want()`: a segment not made yet is asked for (the
    manager lets the running FFmpeg make it or starts a run there), again whenever the run changes.
    `follow(job)`: what makes the segment, where it is not the job's video run (an audio
    rendition's AudioTrack, `rendition`): collected, waited on and asked instead.

    Requests that wait hold request threads: no more than playlist_wait_share of them may, so
    job commands, /healthz and ready files always find one; past it, 503 at once."""
    manager, settings = context().manager, context().settings
    deadline = time.monotonic() + settings.playlist_wait_s
    holding = False
    asked, asked_at = None, 0.0  # the run last asked for the segment, and when
    waits = contextlib.ExitStack()  # a segment not made yet: its run is given time while it waits
    try:
        while True:
            video = manager.get(job_id)  # again each time: a seek or a jump replaces the run
            if video is None:
                abort(404)
            job = follow(video) if follow is not None else video
            _watched(video, segment, settings, rendition)
            response = serve(video)
            if response is None:
                job.collect()  # what FFmpeg has finished is put in place at once
                response = serve(video)
            if response is not None:
                return response
            if want is not None and (asked is not job or time.monotonic() - asked_at >= ASK_AGAIN_S):
                if asked is None:
                    waits.enter_context(manager.waiting(job_id, segment, rendition))
                asked, asked_at = job, time.monotonic()
                try:
                    want()  # again now and then: a run that stopped moving is replaced
                except Refused as exc:  # an ended job finds no slot for a run now
                    if manager.closing:
                        return _shutting_down()
                    return error(exc.status, str(exc), retry_after=exc.retry_after)
                if manager.get(job_id) is not video:
                    continue
            # (a run being replaced: the next run is there in a moment)
            if job.state not in WRITING_STATES and not job.superseded and not (pending and pending(job)):
                if job.state is JobState.FAILED:
                    return error(404, f"job {job_id} failed: {job.error}")
                abort(404)
            remaining = deadline - time.monotonic()
            if manager.closing:  # the worker is stopping: do not hold the shutdown up
                return _shutting_down()
            if remaining <= 0:
                return error(503, f"job {job_id} has not made it yet", retry_after=1)
            if not holding:
                holding = context().waiting.acquire(blocking=False)
                if not holding:
                    return error(503, "too many requests are waiting for FFmpeg; retry", retry_after=1)
            elif _client_gone(request.environ):  # a player that gave up frees its share at once
                return error(503, "the client went away", retry_after=1)
            job.wait_changed(min(POLL_S, remaining))
    finally:
        waits.close()
        if holding:
            context().waiting.release()


def _client_gone(environ):
    """True when the client of this request has closed its connection (gunicorn's socket reads
    its end); a pipelined next request is not a close."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return False
    try:  # (no select(): it fails on a descriptor above 1024, and a busy worker has them)
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:  # nothing to read: still there
        return False
    except (OSError, ValueError):  # reset, or closed already
        return True


def _streamable(job):
    """Raise Unavailable for a job that has no stream: failed, or stopped for good."""
    if job.state is JobState.FAILED:
        raise Unavailable(f"job {job.job_id} failed: {job.error}")
    if job.state is JobState.STOPPED and not job.superseded:
        raise Unavailable(f"job {job.job_id} was stopped")


def media_text(job):
    """The job's media playlist: the whole film (its grid), whatever FFmpeg has made so far."""
    output = job.output
    return media_playlist(job.grid, output.segment, job.command.seek_s, output.init_segment)


def playlist(job):
    """(headers, body) of the media playlist players get: at once, the whole film."""
    _streamable(job)
    return _generated(PLAYLIST_TYPE, media_text(job).encode())


def multivariant_playlist(job):
    """(headers, body) of the multivariant playlist, once FFmpeg has made a first segment (its
    codecs are read from it, once per job)."""
    _streamable(job)
    if job.codecs is None:
        if job.output.init_segment:
            first = job.output.init_segment
        elif job.last_segment_id is not None:
            first = job.output.segment(job.last_segment_id)
        else:
            return None
        try:
            job.codecs = multivariant.codecs_of_segment(job.read_head(first), job.output.fmp4)
        except FileNotFoundError:
            return None
    # (the command's audio choice is the DEFAULT rendition; the run's spec is a step's, perhaps)
    spec = dataclasses.replace(job.spec, audio=job.command.audio)
    body = multivariant.playlist_text(spec, job.output, job.codecs, job.subtitles is not None).encode()
    return _generated(PLAYLIST_TYPE, body)


def _generated(content_type, body):
    # no-cache: a re-POST may move EXT-X-START, another stream may take the job id
    return [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", NO_CACHE)], body


def extracting(job):
    """True while the job's subtitle tracks are being extracted."""
    return job.subtitles is not None and not job.subtitles.ready.is_set()


def _text_track(job, stream):
    if job.subtitles is None or not any(s.stream == stream and s.text for s in job.spec.media.subtitles):
        raise Unavailable(f"job {job.job_id} has no text subtitle stream {stream}")


def _rendition(job, name):
    """The job's audio rendition `name` (renditions.Rendition); Unavailable when it has none."""
    rendition = job.plan.renditions(job.command.audio).get(name)
    if rendition is None:
        raise Unavailable(f"job {job.job_id} has no audio rendition {name}")
    return rendition


def _audio_output(job, name):
    return job.plan.audio_output(name)


def audio_playlist(job, name):
    """(headers, body) of an audio rendition's media playlist: the video's grid, segment for
    segment (its segments are made when a player asks for them)."""
    _rendition(job, name)
    _streamable(job)
    output = _audio_output(job, name)
    text = media_playlist(job.grid, output.segment, job.command.seek_s, output.init_segment)
    return _generated(PLAYLIST_TYPE, text.encode())


def audio_segment_path(job, name, number, extension):
    """Where a segment of an audio rendition is (once made); None for a name the job never has
    (or a rendition no player has asked for yet: none of its segments is made)."""
    track = job.audio.get(name)
    path = track.segment_path(job, number, extension) if track is not None else None
    return None if path is None else str(path)


def audio_init_path(job, name):
    """Where an audio rendition's fMP4 init segment is; None in MPEG-TS or for no such rendition."""
    track = job.audio.get(name)
    path = track.init_path(job) if track is not None else None
    return None if path is None else str(path)


def subtitle_playlist(job, stream):
    """(headers, body) of the WebVTT media playlist of subtitle stream `stream`: the video's grid,
    segment for segment."""
    _text_track(job, stream)
    _streamable(job)
    return _generated(PLAYLIST_TYPE, webvtt.playlist(job.grid, job.job_id, stream, job.command.seek_s).encode())


def subtitle_segment(job, stream, number):
    """(headers, body) of a WebVTT segment, once the track is extracted: the cues of the video
    segment's span, on the job's one clock."""
    _text_track(job, stream)
    if not 0 <= number < len(job.grid):
        raise Unavailable(f"the film has no segment {number}")
    if not job.subtitles.ready.is_set():
        return None
    if job.subtitles.error is not None:
        raise Unavailable(job.subtitles.error)
    _streamable(job)
    try:
        cues = job.subtitles.cues(stream)
    except OSError:  # the cache let it go: the file changed since the job began
        raise Unavailable(f"the subtitles of job {job.job_id} are gone: its source changed") from None
    delay = 0.0 if job.output.fmp4 else grid.MPEGTS_DELAY_S
    mpegts = round((grid.CLOCK_S + delay) * 90000)
    body = webvtt.segment(cues, job.grid.start(number), job.grid.end(number), mpegts, 0.0)
    return _generated(WEBVTT_TYPE, body.encode())


def _playlist_response(job, answer):
    try:
        generated = answer(job)
    except Unavailable as exc:
        return error(404, str(exc))
    return None if generated is None else Response(generated[1], headers=generated[0])


def segment_path(job, number, extension):
    """Where a segment of `job` is (once made); None for one outside the film or of the other
    segment format."""
    if not 0 <= number < len(job.grid) or extension != job.output.segment_extension:
        return None
    return os.path.join(job.folder, job.output.segment(number))


def init_path(job, number):
    """Where the job's fMP4 init segment is; None for any other name."""
    name = job.output.init_segment
    return os.path.join(job.folder, name) if name and number == 0 else None


def _content_type(path):
    return SEGMENT_TYPES[path.rpartition(".")[2]]


def segment_headers(path, stat):
    # Names are reused only if a job id is: revalidating (a cheap 304) keeps players safe then.
    return [
        ("Content-Type", _content_type(path)),
        ("Content-Length", str(stat.st_size)),
        ("Last-Modified", http_date(stat.st_mtime)),
        ("Cache-Control", NO_CACHE),
        ("ETag", f'"{etag(stat)}"'),
        ("Accept-Ranges", "bytes"),
    ]


def etag(stat):
    """A segment's entity tag: a reused name (a seek, a job id posted again) gets a new one."""
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


def accel_headers(path, segment_root):
    """The answer that has nginx (front = "nginx") send a ready file itself: its internal
    location under segment_root; nginx adds the type, ETag, Last-Modified, ranges, CORS."""
    relative = os.path.relpath(path, os.path.realpath(segment_root))
    return [("X-Accel-Redirect", front.INTERNAL + quote(relative)), ("Content-Length", "0")]


def behind_front(environ, settings):
    """True for a request nginx passed on (only trusted when nginx is the front)."""
    return settings.front == "nginx" and environ.get("HTTP_X_TW_FRONT") == "nginx"


def _segment_response(path):
    """Any GET or HEAD of a segment: whole, a byte range, or a revalidation (304)."""
    if path is None:
        abort(404)
    if behind_front(request.environ, context().settings):
        if not os.path.exists(path):
            return None  # _measured books it once it is there
        return Response(b"", headers=accel_headers(path, context().settings.segment_root))
    try:
        response = send_file(path, mimetype=_content_type(path), conditional=True, etag=etag(os.stat(path)))
    except FileNotFoundError:
        return None
    response.headers["Cache-Control"] = NO_CACHE
    del response.headers["Content-Disposition"]  # inline is the default; FastPath sends none
    return response


class FastPath:
    """WSGI middleware: a GET or HEAD of a playlist or a whole segment that is ready, answered
    without Flask (a segment through gunicorn's sendfile), with the headers, job bookkeeping and
    metrics the blueprint gives. Anything else goes on to Flask (wsgi_app): a Range or
    conditional header, a file not written yet (Flask waits for it), an unknown job, any other
    path or method.
    """

    FLASK_HEADERS = ("HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
                     "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE")

    def __init__(self, wsgi_app, ctx):
        self.wsgi_app = wsgi_app
        self.ctx = ctx

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        ready = self._ready(environ) if method in ("GET", "HEAD") else None
        if ready is None:
            return self.wsgi_app(environ, start_response)
        kind, headers, body, size = ready
        try:
            start_response("200 OK", [*headers, *CORS])
        except BaseException:
            _close(body)
            raise
        self.ctx.metrics.observe_served(kind, started, size)
        self.ctx.metrics.observe_request(ENDPOINT, method, 200, started)
        if method == "HEAD":
            _close(body)
            return []
        return body

    def _ready(self, environ):
        """(kind, headers, body, size) when the request is ready to answer here, else None."""
        parsed = parse_name(environ.get("PATH_INFO", "")[1:])
        if parsed is None:
            return None
        kind, job_id, number, answer, rendition = parsed
        if kind != "segment":
            return self._generated(kind, job_id, number, answer)
        if behind_front(environ, self.ctx.settings):  # nginx does ranges and revalidations
            return self._accel(job_id, number, answer, rendition)
        if not any(header in environ for header in self.FLASK_HEADERS):
            return self._segment(environ, job_id, number, answer, rendition)
        return None

    def _accel(self, job_id, number, answer, rendition=None):
        job = self.ctx.manager.get(job_id)
        path = answer(job) if job is not None else None
        if path is None:
            return None
        try:
            size = os.stat(path).st_size
        except OSError:  # not written yet: Flask waits for it
            return None
        _watched(job, number, self.ctx.settings, rendition)
        return "segment", accel_headers(path, self.ctx.settings.segment_root), [], size

    def _generated(self, kind, job_id, number, answer):
        job = self.ctx.manager.get(job_id)
        try:
            answer = answer(job) if job is not None else None
        except Unavailable:
            return None  # Flask says why
        if answer is None:
            return None
        _watched(job, number, self.ctx.settings)
        headers, body = answer
        return "playlist" if kind == "playlist" else "segment", headers, [body], len(body)

    def _segment(self, environ, job_id, number, answer, rendition=None):
        job = self.ctx.manager.get(job_id)
        path = answer(job) if job is not None else None
        if path is None:
            return None
        try:
            file = open(path, "rb")
        except OSError:  # not written yet, or gone: Flask waits for it, or says why not
            return None
        try:
            stat = os.fstat(file.fileno())
            _watched(job, number, self.ctx.settings, rendition)
        except BaseException:
            file.close()
            raise
        return "segment", segment_headers(path, stat), wrap_file(environ, file), stat.st_size


def book(ctx, job_id, segment, status, size, seconds, method, rendition=None):
    """A file nginx sent itself (front.Booking): the same bookkeeping as the app's answers."""
    job = ctx.manager.get(job_id)
    if job is not None:
        _watched(job, segment, ctx.settings, rendition)
    started = time.perf_counter() - seconds
    if status in (200, 206):
        ctx.metrics.observe_served("segment", started, size)
    ctx.metrics.observe_request(ENDPOINT, method, status, started)


def _close(body):
    if hasattr(body, "close"):
        body.close()
