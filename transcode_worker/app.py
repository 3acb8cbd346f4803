"""The Flask application factory: one WorkerContext, a blueprint per concern.

Start-up, in order (in gunicorn's worker process, after fork, so every thread lives there):
lock segment_root and spool_dir, end what a crashed previous run left, find what FFmpeg and the
hardware can do, load the media library, check health once, then start the background threads
(library scan, health monitor, heartbeat). Shutdown is WorkerContext.shutdown().
"""
import logging
import os
import threading
import time
from dataclasses import dataclass

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import capabilities as caps
from . import front
from .config import FOLDER_KEYS, load_settings, wait_slots
from .health import HealthMonitor
from .handover import Handover
from .heartbeat import Heartbeat
from .jobs import JobManager
from .library import MediaLibrary
from .metrics import WorkerMetrics
from .orchestrator_client import OrchestratorClient, Unreachable
from .runstate import RunState, lock_folder
from .supervisor import nice_prefix, pdeathsig_prefix
from .spool import Spool
from .subtitles import SubtitleCache
from .states import ACTIVE_STATES

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a job command is a few hundred bytes
HEALTH_INTERVAL_S = 5.0


@dataclass
class WorkerContext:
    """What the blueprints share, and the parts that run in the background."""

    settings: object
    capabilities: caps.Capabilities
    library: MediaLibrary
    manager: JobManager
    health: HealthMonitor
    runstate: RunState
    heartbeat: Heartbeat | None  # None when standalone
    metrics: WorkerMetrics
    handover: Handover | None = None  # jobs players bring here from other workers; None when standalone
    locks: tuple = ()
    waiting: threading.BoundedSemaphore = None  # request threads that may wait for FFmpeg

    def __post_init__(self):
        self.waiting = threading.BoundedSemaphore(wait_slots(self.settings))

    def start(self):
        self.manager.start_janitor()
        self.library.start()
        self.health.start()
        if self.heartbeat is not None:
            self.heartbeat.start()
        else:
            log.info("standalone: no orchestrator_url, so no registration and no heartbeats")

    def shutdown(self):
        """The fixed order: stop taking jobs, send the death note (after the heartbeat's last call:
        the orchestrator moves the jobs, and their players, at once), stop the background threads,
        stop every FFmpeg (bounded by stop_grace_s) and remove its folder, mark the run clean."""
        self.manager.close()
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat.death_note("SHUTDOWN")
        self.manager.stop_janitor()
        self.library.stop()
        self.health.stop()
        self.manager.shutdown()
        self.runstate.close()
        if self.handover is not None:
            self.handover.close()


def build_context(settings, capabilities=None, front_started=False):
    # after a SIGHUP, the process this one replaces holds the folders until its jobs have stopped
    locks = tuple(lock_folder(folder, sibling_wait_s=settings.shutdown_timeout_s + 5)
                  for folder in (getattr(settings, key) for key in FOLDER_KEYS))
    runstate = RunState(settings.spool_dir, settings.segment_root)
    runstate.recover(standalone=not settings.orchestrator_url)
    capabilities = capabilities or caps.detect(settings.ffmpeg_path)
    if capabilities.ffmpeg_ok:
        log.info("FFmpeg %s; encoders: %s; hardware acceleration: %s", capabilities.ffmpeg_version,
                 ", ".join(capabilities.encoders) or "none", ", ".join(capabilities.hardware_acceleration) or "none")
    subtitles = SubtitleCache(settings.ffmpeg_path, os.path.join(settings.spool_dir, "subtitles"),
                              settings.subtitle_cache_mb << 20, media_roots=settings.media_roots,
                              prefix=pdeathsig_prefix() + nice_prefix())
    library = MediaLibrary(settings.ffprobe_path, settings.media_roots, settings.spool_dir,
                           settings.library_scan_interval_s, after_scan=subtitles.prune)
    # a service started as root opens what nginx's workers (another user then) send to them
    nginx_user = front.other_user(settings)
    published = front.Published(front.links_dir(settings), open_below=settings.segment_root if nginx_user else None) \
        if settings.front == "nginx" else None
    manager = JobManager(settings, vaapi_device=capabilities.vaapi_device,
                         hardware_tonemap=capabilities.hardware_tonemap, subtitles=subtitles, published=published,
                         ffmpeg_umask=front.readable_umask() if nginx_user else -1)
    # (a replaced run's end, which may come after its successor's start, is not the job's)
    manager.add_listener(lambda job, old, new: None if job.superseded and new not in ACTIVE_STATES
                         else runstate.job_changed(job, new in ACTIVE_STATES))
    health = HealthMonitor(settings, interval_s=min(HEALTH_INTERVAL_S, settings.heartbeat_interval_s), front=front_started)
    health.check_now()
    manager.set_gate(health.reason)
    heartbeat = None
    if settings.orchestrator_url:
        spool = Spool(os.path.join(settings.spool_dir, "outbox"), settings.spool_max_records)
        heartbeat = Heartbeat(settings, capabilities, manager, health, runstate, spool)
    handover = Handover(settings) if settings.orchestrator_url else None
    ctx = WorkerContext(settings, capabilities, library, manager, health, runstate, heartbeat, WorkerMetrics(),
                        handover, locks)
    ctx.metrics.watch(ctx)
    return ctx


def create_app(settings=None, capabilities=None, front_started=False):
    """Build the worker's WSGI app. Under gunicorn this runs in the worker process, after fork;
    `front_started`: the master has started nginx in front of it (health.py checks it)."""
    settings = settings or load_settings()
    try:
        for folder in (settings.segment_root, settings.spool_dir):
            os.makedirs(folder, exist_ok=True)
        ctx = build_context(settings, capabilities, front_started)
    except Exception as exc:
        log.critical("the worker cannot start: %s", exc)
        send_fatal_death_note(settings, f"the worker cannot start: {exc}")
        raise

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["transcode_worker"] = ctx

    from .api import health, hls, jobs, media, metrics
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(hls.bp)
    app.wsgi_app = hls.FastPath(app.wsgi_app, ctx)

    @app.before_request
    def start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def record_latency(response):
        if "started" in g:
            ctx.metrics.observe_request(request.endpoint, request.method, response.status_code, g.started)
        return response

    app.register_error_handler(HTTPException, json_http_error)
    ctx.start()
    return app


def json_http_error(exc):
    """Flask's HTTP errors (404, 405, 413...) as JSON, like every other answer of the API."""
    response = jsonify(error=exc.name, detail=exc.description)
    response.status_code = exc.code
    return response


def send_fatal_death_note(settings, message):
    """Tell the orchestrator this worker is going down on an error (best effort, bounded)."""
    if not settings.orchestrator_url:
        return
    client = OrchestratorClient(settings.orchestrator_url, settings.worker_id, settings.api_token)
    try:
        client.death_note({"status": "OFFLINE", "reason": "ERROR", "message": message[:1000]}, timeout=3.0)
    except Unreachable as exc:
        log.warning("death note (ERROR) not delivered: %s", exc)
    finally:
        client.close()
