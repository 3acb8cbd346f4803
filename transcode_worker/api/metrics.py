"""`GET /metrics` for Prometheus: open like /healthz (no job data beyond counts and states)."""
from flask import Blueprint, Response

from ..metrics import CONTENT_TYPE
from . import context

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    return Response(context().metrics.render(), content_type=CONTENT_TYPE)
