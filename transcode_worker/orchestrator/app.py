"""The orchestrator's Flask factory and its monitor thread."""
import logging
import threading
from dataclasses import dataclass, field

from flask import Flask
from werkzeug.exceptions import HTTPException

from ..app import json_http_error
from .config import load_orchestrator_settings
from .dispatch import Dispatcher
from .store import Store
from .streams import MediaPlaylists

log = logging.getLogger(__name__)


@dataclass
class OrchestratorContext:
    settings: object
    store: Store
    dispatcher: Dispatcher
    media_playlists: MediaPlaylists = field(default_factory=MediaPlaylists)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self):
        self._thread = threading.Thread(target=self._monitor, name="monitor", daemon=True)
        self._thread.start()

    def _monitor(self):
        while not self._stop.wait(self.settings.check_interval_s):
            try:
                self.dispatcher.check()
            except Exception:  # the monitor is what heals the pool: it must not die
                log.exception("monitor round failed")

    def shutdown(self):
        self._stop.set()
        self.dispatcher.close()  # a placement under way ends at its next step, not its last worker
        if self._thread is not None:
            self._thread.join(10)
        self.dispatcher.join(10)  # a worker being taken off the pool, jobs being disowned
        self.store.close()


def create_app(settings=None):
    settings = settings or load_orchestrator_settings()
    store = Store(settings.database)
    ctx = OrchestratorContext(settings, store, Dispatcher(settings, store))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.json.sort_keys = False
    app.extensions["transcode_orchestrator"] = ctx

    from .api import play_bp, workers_bp
    from .streams import streams_bp
    app.register_blueprint(workers_bp)
    app.register_blueprint(play_bp)
    app.register_blueprint(streams_bp)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "workers": len(store.workers())}

    app.register_error_handler(HTTPException, json_http_error)
    ctx.start()
    return app
