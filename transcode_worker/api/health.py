"""Liveness for load balancers and systemd checks: no auth, no work. 200 while the process serves,
503 once it is shutting down (the orchestrator then moves its players: none is sent back here);
`problems` lists what keeps it from taking jobs (the heartbeat's ERROR reasons),
`stuck_ffmpeg` each FFmpeg that SIGKILL did not end, holding a slot (one of its STRESSED reasons)."""
from flask import Blueprint

from .. import __version__
from . import context

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    ctx = context()
    closing = ctx.manager.closing
    return {
        "status": "shutting down" if closing else "ok",
        "worker_id": ctx.settings.worker_id,
        "version": __version__,
        "active_jobs": ctx.manager.active_count(),
        "max_concurrent_jobs": ctx.settings.max_concurrent_jobs,
        "ffmpeg": ctx.capabilities.ffmpeg_version,
        "hardware_acceleration": list(ctx.capabilities.hardware_acceleration),
        "problems": list(ctx.health.problems),
        "stuck_ffmpeg": ctx.manager.stuck(),
    }, 503 if closing else 200
