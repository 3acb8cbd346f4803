"""The Flask application factory: one WorkerContext, three blueprints."""
import logging
import os
from dataclasses import dataclass

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from . import capabilities as caps
from .config import load_settings
from .jobs import JobManager
from .library import MediaLibrary

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a job command is a few hundred bytes


@dataclass
class WorkerContext:
    """What the blueprints share: the settings, what FFmpeg can do, the sources, and the jobs."""

    settings: object
    capabilities: caps.Capabilities
    library: MediaLibrary
    manager: JobManager

    def shutdown(self):
        self.library.stop()
        self.manager.shutdown()


def create_app(settings=None, capabilities=None):
    """Build the worker's WSGI app. Under gunicorn this runs in the worker process, after fork."""
    settings = settings or load_settings()
    for folder in (settings.segment_root, settings.spool_dir):
        os.makedirs(folder, exist_ok=True)
    capabilities = capabilities or caps.detect(settings.ffmpeg_path)
    if capabilities.ffmpeg_ok:
        log.info("FFmpeg %s; encoders: %s", capabilities.ffmpeg_version, ", ".join(capabilities.encoders) or "none")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    library = MediaLibrary(settings.ffprobe_path, settings.media_roots, settings.spool_dir,
                           settings.library_scan_interval_s)
    app.extensions["transcode_worker"] = WorkerContext(settings, capabilities, library, JobManager(settings))
    library.start()

    from .api import health, hls, jobs
    app.register_blueprint(health.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(hls.bp)

    @app.errorhandler(HTTPException)
    def json_error(exc):
        response = jsonify(error=exc.name, detail=exc.description)
        response.status_code = exc.code
        return response

    return app
