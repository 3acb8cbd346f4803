"""nginx in front of gunicorn (``front = "nginx"``): what faces the network.

gunicorn's own deployment guide asks for a buffering proxy in front: a client that trickles its
headers, or hundreds of them, would otherwise hold the app's request threads. Here nginx
listens on ``listen``; gunicorn serves the app on a loopback port only nginx knows. nginx takes
every client's request whole before the app sees it (header and body timeouts, size limits),
and sends ready segments itself by sendfile: the app still answers each request (the janitor's
idle clock, throttling's resume, the metrics) but with an ``X-Accel-Redirect`` to an internal
location under ``segment_root``, and nginx does the bytes, the ranges and the revalidations.

nginx is a child of ``transcode-worker serve`` (gunicorn's master), in a process group of its
own and started through ``setpriv --pdeathsig TERM``: it stops with the service, and dies with
it if the master is killed. A front that dies is started again; one that dies more than
RESTARTS times in a minute stops the service (so systemd restarts the whole of it), and the
log says which.
"""
import getpass
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

HEADER = "X-TW-Front"  # set by nginx on every request it passes on; the app trusts it only in front mode
INTERNAL = "/_files/"  # nginx's internal location of segment_root
RESTARTS = 3  # within RESTART_WINDOW_S, then the service stops
RESTART_WINDOW_S = 60
STOP_GRACE_S = 5
SETPRIV = shutil.which("setpriv")

CONF = """\
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log stderr warn;
{user}
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server_tokens off;
  sendfile on;
  tcp_nopush on;
  # slow clients are nginx's: a request reaches the app whole, or not at all
  client_header_timeout 10s;
  client_body_timeout 10s;
  send_timeout 60s;
  keepalive_timeout 15s;
  client_max_body_size {max_body};
  large_client_header_buffers 4 8k;
  client_body_temp_path {run}/body;
  proxy_temp_path {run}/proxy;
  fastcgi_temp_path {run}/fastcgi;
  uwsgi_temp_path {run}/uwsgi;
  scgi_temp_path {run}/scgi;
  types {{ video/mp2t ts; video/mp4 m4s mp4; }}
  default_type application/octet-stream;
  upstream app {{ server {app}; keepalive 16; }}
  server {{
    listen {listen};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header {header} nginx;
      # a player waits for a segment FFmpeg has not written yet: the app answers within playlist_wait_s
      proxy_read_timeout {read_timeout}s;
      proxy_buffering off;
    }}
    location {internal} {{
      internal;
      alias {segment_root}/;
      add_header Cache-Control no-cache always;
      add_header Access-Control-Allow-Origin * always;
      add_header Access-Control-Expose-Headers "Content-Length, Content-Range, Accept-Ranges" always;
    }}
  }}
}}
"""


def nginx_conf(settings, app_address, run_dir):
    """nginx's configuration for these settings, the app at `app_address` (host:port)."""
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""  # root: workers as root too
    return CONF.format(
        run=run_dir, user=user, max_body="64k", app=app_address, listen=settings.listen, header=HEADER,
        read_timeout=round(settings.playlist_wait_s + 30), internal=INTERNAL,
        segment_root=os.path.realpath(settings.segment_root),
    )


class Front:
    """The nginx child of the service: started, watched, restarted, stopped."""

    def __init__(self, settings, app_address, on_give_up):
        self.settings = settings
        self.app_address = app_address
        self.on_give_up = on_give_up  # called when nginx keeps dying: stop the service
        self.run_dir = Path(settings.spool_dir) / "front"
        self.proc = None
        self._stopping = threading.Event()
        self._deaths = []
        self._thread = None

    def start(self):
        exe = shutil.which(self.settings.nginx_path)
        if exe is None:
            raise RuntimeError(f"nginx ({self.settings.nginx_path}) not found: install nginx-light "
                               "(make test does), or set front = \"none\"")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(nginx_conf(self.settings, self.app_address, self.run_dir))
        self._argv = [*([SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []), exe, "-c", str(conf),
                      "-p", str(self.run_dir), "-e", "stderr"]
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="front", daemon=True)
        self._thread.start()

    def _spawn(self):
        self.proc = subprocess.Popen(self._argv, stdin=subprocess.DEVNULL, start_new_session=True)
        log.info("front: nginx %d listens on %s, the app is at %s", self.proc.pid, self.settings.listen,
                 self.app_address)

    def _watch(self):
        while not self._stopping.is_set():
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            self._kill_group(self.proc.pid)  # a killed master leaves its worker behind
            now = time.monotonic()
            self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW_S] + [now]
            if len(self._deaths) > RESTARTS:
                log.error("front: nginx died %d times within %ds (last exit %s): stopping the service",
                          len(self._deaths), RESTART_WINDOW_S, code)
                self.on_give_up()
                return
            log.error("front: nginx %d died (exit %s): starting it again", self.proc.pid, code)
            time.sleep(0.2)
            self._spawn()

    def stop(self):
        self._stopping.set()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: requests in flight end first
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(self.proc.pid)
        self.proc.wait()

    @staticmethod
    def _kill_group(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
