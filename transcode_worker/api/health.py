"""Liveness for load balancers and systemd checks: no auth, no work."""
from flask import Blueprint

from .. import __version__
from . import context

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    ctx = context()
    return {
        "status": "ok",
        "worker_id": ctx.settings.worker_id,
        "version": __version__,
        "active_jobs": ctx.manager.active_count(),
        "max_concurrent_jobs": ctx.settings.max_concurrent_jobs,
        "ffmpeg": ctx.capabilities.ffmpeg_version,
    }
