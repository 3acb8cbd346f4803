"""`transcode-orchestrator serve`: gunicorn with one process (the monitor thread lives there)."""
import logging
import sys

from gunicorn.app.base import BaseApplication

from .. import logs
from ..config import ConfigError, check_report
from .app import create_app
from .config import OrchestratorSettingsSchema, load_orchestrator_settings

PROG = "transcode-orchestrator"


def worker_exit(server, worker):
    app = getattr(worker, "wsgi", None)
    ctx = app.extensions.get("transcode_orchestrator") if app is not None else None
    if ctx is not None:
        ctx.shutdown()


class OrchestratorApplication(BaseApplication):
    def __init__(self, settings):
        self.settings = settings
        super().__init__()

    def load_config(self):
        # the worker's thread worker: a player that keeps its socket after the 302 holds up nobody
        options = {"bind": [self.settings.listen], "workers": 1,
                   "worker_class": "transcode_worker.server.PlayerThreadWorker", "threads": 16,
                   "timeout": 60, "graceful_timeout": 10, "loglevel": self.settings.log_level, "errorlog": "-",
                   "proc_name": PROG, "worker_exit": worker_exit, "control_socket_disable": True}
        for key, value in options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        return create_app(self.settings)


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog=PROG, description="The reference orchestrator for transcode-worker.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "check-config"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--config", metavar="FILE",
                         help="TOML configuration (default: $TRANSCODE_ORCHESTRATOR_CONFIG, else the defaults)")
    args = parser.parse_args(argv)
    try:
        settings = load_orchestrator_settings(args.config)
    except ConfigError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(check_report(settings, OrchestratorSettingsSchema(), without_file="defaults"))
        return 0
    logs.configure(settings.log_level)
    logging.getLogger(__name__).info("orchestrator on %s, database %s", settings.listen, settings.database)
    OrchestratorApplication(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
