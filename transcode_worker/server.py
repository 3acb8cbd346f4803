"""Running the app under gunicorn: one worker process, many threads.

Job state (the supervisors and their FFmpeg children) lives in that one process, so there must
never be a second one: a job posted to one process could not be seen, seeked or stopped by
another. Threads serve the players; segment files go out through sendfile.
"""
import functools
import logging
import math
import os
import signal
import threading

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from . import logs
from .api import hls
from .app import create_app
from .config import ConfigError
from .front import Booking, Front, booking_socket

log = logging.getLogger(__name__)


def _context(worker):
    app = getattr(worker, "wsgi", None)
    return app.extensions.get("transcode_worker") if app is not None else None


def post_worker_init(worker):
    """Chain gunicorn's SIGTERM handler: the moment the stop begins, refuse new jobs and answer
    players waiting on a segment, so in-flight requests do not eat the shutdown's time bound."""
    ctx = _context(worker)
    if ctx is not None and _booking is not None:  # nginx's bookings of the files it sent itself
        Booking(_booking, functools.partial(hls.book, ctx)).start()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        if ctx is not None:
            ctx.manager.close()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


FRONT_FAILED = 1  # the service's exit status when it stopped because nginx could not run
_front = None  # the nginx child, in gunicorn's master
_booking = None  # the socket nginx books the files it sends on; the worker process inherits it


def when_ready(server):
    """gunicorn's master has bound its socket: with front = "nginx", start nginx before it."""
    global _front, _booking
    settings = server.app.settings
    if settings.front != "nginx":
        return
    host, port = server.LISTENERS[0].sock.getsockname()[:2]
    _booking = booking_socket()
    book_host, book_port = _booking.getsockname()
    _front = Front(settings, f"{host}:{port}", f"{book_host}:{book_port}",
                   on_give_up=lambda: os.kill(os.getpid(), signal.SIGTERM))
    try:
        _front.start()
    except (RuntimeError, OSError) as exc:
        log.error("front: %s", exc)
        _front.gave_up = True
        os.kill(os.getpid(), signal.SIGTERM)


def on_exit(server):
    """The master's last call: the front goes with it. A service stopped because its front could
    not run exits with status 1, so systemd (Restart=on-failure) starts it again."""
    if _front is not None:
        _front.stop()
        if _front.gave_up:
            raise SystemExit(FRONT_FAILED)


def worker_exit(server, worker):
    """gunicorn's last call in the worker process: the ordered shutdown (WorkerContext.shutdown)."""
    ctx = _context(worker)
    if ctx is not None:
        log.info("shutting down: stopping %d job(s)", len(ctx.manager.jobs()))
        ctx.shutdown()


class PlayerThreadWorker(ThreadWorker):
    """gunicorn's threaded worker, with a finished connection closed off its main loop.

    gunicorn 27 closes a connection that is not kept alive by waiting, on the loop that accepts
    every new connection, up to 2 s for the client to close too. A player that drops a segment
    half read (a seek, a quality switch; FFmpeg on every probe) would hold every other player's
    request that long. Here that wait runs on a thread of its own (at most LINGERING at once; past
    that, the socket is closed at once).
    """

    LINGERING = 64
    _lingering = threading.BoundedSemaphore(LINGERING)

    def finish_request(self, conn, fs):
        if not getattr(conn, "lingers_off_loop", False):  # once a connection: a kept-alive one comes back
            conn.close = lambda graceful=False, _close=conn.close: self._close(_close, graceful)
            conn.lingers_off_loop = True
        super().finish_request(conn, fs)

    def _close(self, close, graceful):
        if not graceful or not self._lingering.acquire(blocking=False):
            close()
            return

        def linger():
            try:
                close(graceful=True)
            finally:
                self._lingering.release()

        threading.Thread(target=linger, name="linger", daemon=True).start()


def gunicorn_options(settings):
    """gunicorn settings for this worker's configuration (also used by conf/gunicorn.conf.py)."""
    options = {
        # behind nginx: a loopback port only the front knows (when_ready reads which)
        "bind": ["127.0.0.1:0" if settings.front == "nginx" else settings.listen],
        "workers": 1,  # never more: see the module docstring
        "worker_class": f"{__name__}.PlayerThreadWorker",
        "threads": settings.http_threads,
        "timeout": 60,
        # the whole stop, from SIGTERM: in-flight requests end at once (post_worker_init), then
        # worker_exit stops FFmpeg within stop_grace_s and sends the death note
        "graceful_timeout": math.ceil(settings.shutdown_timeout_s),
        "keepalive": 5,
        "loglevel": settings.log_level,
        "errorlog": "-",
        "proc_name": f"transcode-worker[{settings.worker_id}]",
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "when_ready": when_ready,
        "on_exit": on_exit,
        # gunicorn 27's control socket would be a file in $HOME; the worker needs none
        "control_socket_disable": True,
    }
    if logs.gunicorn_logconfig(settings):
        options["logconfig_dict"] = logs.gunicorn_logconfig(settings)
    return options


class WorkerApplication(BaseApplication):
    """`transcode-worker serve`: gunicorn configured from our settings, not from its CLI.

    `reread()` loads the configuration anew for a SIGHUP; gunicorn then starts a worker process
    on it and stops the old one, whose jobs stop as in a restart (the new one waits for the old
    to let go of its folders: runstate.lock_folder)."""

    def __init__(self, settings, reread=None):
        self.settings = settings
        self.reread = reread
        super().__init__()

    def reload(self):
        if self.reread is not None:
            try:
                self.settings = self.reread()
            except ConfigError as exc:
                log.error("SIGHUP: the configuration is not reloaded, the running one stays: %s", exc)
        super().reload()

    def load_config(self):
        for key, value in gunicorn_options(self.settings).items():
            if key in self.cfg.settings:  # options newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self):
        return create_app(self.settings, front_started=_front is not None)  # (after the fork: the master's)
