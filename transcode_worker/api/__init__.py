"""HTTP layer: one blueprint per concern (health, metrics, job commands, sources, HLS serving)."""
from flask import current_app


def context():
    """The WorkerContext of the running app."""
    return current_app.extensions["transcode_worker"]
