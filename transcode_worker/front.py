"""nginx in front of gunicorn (``front = "nginx"``): what faces the network.

gunicorn's own deployment guide asks for a buffering proxy in front: a client that trickles its
headers, or hundreds of them, would otherwise hold the app's request threads. Here nginx
listens on ``listen``; gunicorn serves the app on a loopback port only nginx knows. nginx takes
every client's request whole before the app sees it (header and body timeouts, size limits).

A ready segment or init segment never reaches the app: the app publishes each job's folder as a
link named after the job (``<spool_dir>/front/jobs/<job_id>``), and nginx sends the file it finds
there by sendfile, with its ranges and revalidations. Each such request is booked all the same
(the janitor's idle clock, throttling's resume, the metrics): nginx logs it as a syslog datagram
to a loopback socket the app reads (Booking). A file not there yet goes on to the app, which
waits for it and then hands it back to nginx with an ``X-Accel-Redirect``. Playlists are the
app's: it writes them.

nginx's worker processes, which parse every client's request, never run as root: a service
started as root names nginx_user (nobody) in nginx's ``user`` directive, and opens to that user
what its workers read and write (the segment folders and the files FFmpeg writes in them, the
links folder, nginx's temporary folders); a folder on the way that is closed to it stops the
start, named (check_reachable). Started as another user, nginx's workers run as that one.

nginx is a child of ``transcode-worker serve`` (gunicorn's master), in a process group of its
own and started through ``setpriv --pdeathsig TERM``: it stops with the service, and dies with
it if the master is killed. A front that dies is started again, and one that cannot be started
(a failed fork: a pids limit, no memory) is tried again, less and less often; one that dies more
than RESTARTS times in a minute, or cannot be started SPAWN_TRIES times in a row, stops the
service with exit status 1 (so systemd's Restart=on-failure starts the whole of it again), and
the log says which.
"""
import grp
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

from .config import FOLDER_KEYS, ConfigError, wait_slots

log = logging.getLogger(__name__)

HEADER = "X-TW-Front"  # set by nginx on every request it passes on; the app trusts it only in front mode
INTERNAL = "/_files/"  # nginx's internal location of segment_root
BOOK_TAG = "tw"  # the syslog tag of a booking datagram
MAX_BODY = "64k"  # a job command is a few hundred bytes (app.MAX_BODY_BYTES)
RESTARTS = 3  # within RESTART_WINDOW_S, then the service stops
RESTART_WINDOW_S = 60
RESTART_DELAY_S = 0.2  # after a death; doubled after each failed start
SPAWN_TRIES = 5  # failed starts in a row (0.2 + 0.4 + ... 3.2 s apart), then the service stops
STOP_GRACE_S = 5
SETPRIV = shutil.which("setpriv")

ID = "[A-Za-z0-9_-]{1,64}"  # hls_names' job id
AUDIO = r"audio\d{1,5}(-(dialogue|copy|ac3|surround))?"  # hls_names' audio rendition
CORS = """\
      add_header Cache-Control no-cache always;
      add_header Access-Control-Allow-Origin * always;
      add_header Access-Control-Allow-Methods "GET, HEAD, OPTIONS" always;
      add_header Access-Control-Allow-Headers Range always;
      add_header Access-Control-Expose-Headers "Content-Length, Content-Range, Accept-Ranges" always;"""
# A ready file, sent by nginx from the job's published folder and booked by the app; anything
# else goes on to the app: a file not written yet (@wait: the app waits for it), another method.
READY = """\
    location ~ "^/(?<tw_job>{id}){name}$" {{
      root {links};
      try_files /$tw_job$uri @wait;
      error_page 405 = @app;
{errors}
      access_log syslog:server={book},tag={tag},nohostname {log_format};
{cors}
    }}"""

# nginx's own refusals, in the API's words (the JSON the app's own 400, 413 and 503 have); the
# app's answers pass as they are. An app not up (starting, or a new worker process after a
# reload) is a 503 to retry.
ERRORS = """\
      error_page 400 /_error/400;
      error_page 413 /_error/413;
      error_page 502 504 =503 /_error/503;"""
ERROR_LOCATIONS = """\
    location = /_error/400 {{
      internal;
      default_type application/json;
      return 400 '{{"error": "Bad Request", "detail": "the request is malformed"}}\\n';
    }}
    location = /_error/413 {{
      internal;
      default_type application/json;
      return 413 '{{"error": "Request Entity Too Large", "detail": "a request body is at most {max_body}"}}\\n';
    }}
    location = /_error/busy {{
      internal;
      default_type application/json;
      add_header Retry-After 1 always;
      add_header Access-Control-Allow-Origin * always;
      return 503 '{{"error": "too many requests are waiting for FFmpeg; retry"}}\\n';
    }}
    location = /_error/503 {{
      internal;
      default_type application/json;
      add_header Retry-After 1 always;
      return 503 '{{"error": "the worker is starting or restarting; retry"}}\\n';
    }}"""

PROXY = """\
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header {header} nginx;
      # a player waits for a segment FFmpeg has not written yet: the app answers within playlist_wait_s
      proxy_read_timeout {read_timeout}s;
      proxy_buffering off;"""

CONF = """\
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log stderr warn;
{user}
worker_rlimit_nofile 8192;
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
  # a booking: job, segment number (- for an init segment), status, bytes, seconds, method
  log_format tw_segment "$tw_job $tw_n $status $body_bytes_sent $request_time $request_method";
  log_format tw_init "$tw_job - $status $body_bytes_sent $request_time $request_method";
  log_format tw_audio "$tw_job:$tw_r $tw_n $status $body_bytes_sent $request_time $request_method";
  log_format tw_audio_init "$tw_job:$tw_r - $status $body_bytes_sent $request_time $request_method";
  upstream app {{ server {app}; keepalive 16; }}
  limit_conn_zone $server_port zone=waiting:1m;
  server {{
    listen {listen};
{errors}
{error_locations}
{segment}
{init}
{audio}
{audio_init}
    location / {{
{proxy}
    }}
    location @app {{
{proxy}
    }}
    # No more than the app's wait share of requests wait for FFmpeg; past it nginx answers 503 at
    # once, so a crowd of waiting players never queues in front of the app's other requests.
    location @wait {{
{proxy}
      limit_conn waiting {wait_slots};
      limit_conn_status 503;
      limit_conn_log_level info;
{errors}
      error_page 503 /_error/busy;
    }}
    location {internal} {{
      internal;
      alias {segment_root}/;
{cors}
    }}
  }}
}}
"""


SBIN = "/usr/local/sbin:/usr/sbin:/sbin"  # Debian's nginx; not on a plain user's PATH


def find_nginx(name):
    """The nginx executable `name` (nginx_path), else None."""
    return shutil.which(name) or (shutil.which(name, path=SBIN) if os.sep not in name else None)


def links_dir(settings):
    """Where the app publishes each job's folder for nginx (a link per job id)."""
    return Path(settings.spool_dir) / "front" / "jobs"


def worker_user(settings):
    """(passwd entry, group name) that nginx's worker processes run as: nginx_user and its primary
    group when the service runs as root; None otherwise (nginx's workers are then the service's
    user, and nginx ignores a `user` directive). ConfigError for a user this machine lacks."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(settings.nginx_user)
        return user, grp.getgrgid(user.pw_gid).gr_name
    except KeyError:
        raise ConfigError(f"nginx_user: no user {settings.nginx_user!r} (or no name for its group) "
                          "on this machine") from None


def other_user(settings):
    """The passwd entry of nginx's workers when they are not the service's own user (a service
    started as root), else None: then the service must open to them what they serve."""
    found = worker_user(settings) if settings.front == "nginx" else None
    return found[0] if found is not None and found[0].pw_uid != os.geteuid() else None


def closed_folder(path, user):
    """The first folder on the way to `path` (itself included, symlinks resolved) that `user`
    (a passwd entry) may not enter by its mode bits, as (folder, stat); None when it may enter
    every one."""
    if user.pw_uid == 0:
        return None
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    folder = Path("/")
    for part in Path(os.path.realpath(path)).parts:
        folder = folder / part
        info = os.stat(folder)
        bit = (stat.S_IXUSR if info.st_uid == user.pw_uid else
               stat.S_IXGRP if info.st_gid in groups else stat.S_IXOTH)
        if not info.st_mode & bit:
            return folder, info
    return None


def check_reachable(settings):
    """ConfigError naming the key when nginx's workers, as another user than the service, could
    not reach segment_root or spool_dir (where their links and temporary folders are). Folders
    outside the worker's own are never changed: the operator opens them, or moves the worker's."""
    user = other_user(settings)
    if user is None:
        return
    for key in FOLDER_KEYS:
        closed = closed_folder(getattr(settings, key), user)
        if closed is not None:
            folder, info = closed
            raise ConfigError(
                f"{key}: nginx's workers run as {user.pw_name} (nginx_user), who cannot enter {folder} "
                f"({stat.filemode(info.st_mode)}, owner uid {info.st_uid}) on the way to {getattr(settings, key)}: "
                f"let it in (chmod o+x {folder}), move {key}, or name another nginx_user")


def open_folder(folder):
    """Let every user enter `folder` (search, not list): nginx's workers, as another user."""
    mode = os.stat(folder).st_mode
    if not mode & stat.S_IXOTH:
        os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)


def make_own_folder(path, settings):
    """Make one of the worker's own folders (segment_root, spool_dir) if missing; when nginx's
    workers are another user, let them enter it and the folders made on the way to it (a
    strict umask would close them)."""
    path = Path(path)
    made = [folder for folder in (path, *path.parents) if not os.path.lexists(folder)]
    os.makedirs(path, exist_ok=True)
    if other_user(settings) is not None:
        for folder in {path, *made}:
            open_folder(folder)


def readable_umask():
    """The worker's umask, less what would keep other users from reading a file or entering a
    folder: FFmpeg's, when nginx's workers are another user (they send its segments)."""
    current = os.umask(0o077)
    os.umask(current)
    return current & ~0o005


def nginx_conf(settings, app_address, run_dir, book_address):
    """nginx's configuration for these settings: the app at `app_address` (host:port), bookings
    sent to `book_address` (host:port)."""
    found = worker_user(settings)
    user = f"user {found[0].pw_name} {found[1]};" if found is not None else ""
    ready = dict(id=ID, links=os.path.realpath(links_dir(settings)), book=book_address, tag=BOOK_TAG, cors=CORS,
                 errors=ERRORS)
    proxy = PROXY.format(header=HEADER, read_timeout=round(settings.playlist_wait_s + 30))
    return CONF.format(
        run=run_dir, user=user, max_body=MAX_BODY, app=app_address, listen=settings.listen, proxy=proxy,
        internal=INTERNAL, cors=CORS, errors=ERRORS, wait_slots=wait_slots(settings),
        error_locations=ERROR_LOCATIONS.format(max_body=MAX_BODY),
        segment_root=os.path.realpath(settings.segment_root),
        segment=READY.format(name=r"_(?<tw_n>\d{1,9})\.(ts|m4s)", log_format="tw_segment", **ready),
        init=READY.format(name=r"_init_\d{1,9}\.mp4", log_format="tw_init", **ready),
        audio=READY.format(name=rf"\.(?<tw_r>{AUDIO})_(?<tw_n>\d{{1,9}})\.(ts|m4s)", log_format="tw_audio", **ready),
        audio_init=READY.format(name=rf"\.(?<tw_r>{AUDIO})_init\.mp4", log_format="tw_audio_init", **ready),
    )


class Published:
    """The job folders nginx may send ready files from: a link per job id in links_dir, made
    when a run starts and removed before its folder is. With `open_below` (segment_root, when
    nginx's workers are another user), each job folder and the folders it is in below
    `open_below` are opened to them as it is published."""

    def __init__(self, folder, open_below=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.open_below = Path(os.path.realpath(open_below)) if open_below is not None else None
        for stale in self.folder.iterdir():  # a crashed run's
            stale.unlink()

    def publish(self, job_id, job_folder):
        if self.open_below is not None:
            folder = Path(os.path.realpath(job_folder))
            while folder != self.open_below and self.open_below in folder.parents:
                open_folder(folder)
                folder = folder.parent
        staged = self.folder / f".{job_id}.new"
        staged.unlink(missing_ok=True)
        os.symlink(job_folder, staged)
        os.replace(staged, self.folder / job_id)  # a seek's new folder replaces the old at once

    def withdraw(self, job_id):
        (self.folder / job_id).unlink(missing_ok=True)


def booking_socket():
    """The loopback socket nginx sends its bookings to (opened by gunicorn's master, read by its
    worker process, which inherits it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    return sock


class Booking:
    """Reads nginx's bookings, one syslog datagram per file it sent, and hands each to
    book(job_id, segment, status, size, seconds, method, rendition); segment is None for an init
    segment, rendition the audio rendition's name (job_id:rendition in the datagram), else None."""

    def __init__(self, sock, book):
        self.sock = sock
        self.book = book
        self._thread = threading.Thread(target=self._run, name="booking", daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        marker = f" {BOOK_TAG}: ".encode()
        while True:
            try:
                datagram = self.sock.recv(2048)
            except OSError:
                return  # closed
            try:
                job, segment, status, size, seconds, method = datagram.partition(marker)[2].decode().split()
                job_id, _, rendition = job.partition(":")
                self.book(job_id, None if segment == "-" else int(segment), int(status), int(size),
                          float(seconds), method, rendition or None)
            except Exception:  # a malformed datagram, or a booking that failed: never stop reading
                log.exception("front: could not book %r", datagram[:200])


class Front:
    """The nginx child of the service: started, watched, restarted, stopped."""

    def __init__(self, settings, app_address, book_address, on_give_up):
        self.settings = settings
        self.app_address = app_address
        self.book_address = book_address
        self.on_give_up = on_give_up  # called when nginx keeps dying: stop the service
        self.run_dir = Path(settings.spool_dir) / "front"
        self.proc = None
        self._stopping = threading.Event()
        self._deaths = []
        self._thread = None
        self.gave_up = False  # the service stops because of the front: it exits with status 1

    def start(self):
        exe = find_nginx(self.settings.nginx_path)
        if exe is None:
            raise RuntimeError(f"nginx ({self.settings.nginx_path}) not found: install nginx-light "
                               "(make test does), or set front = \"none\"")
        try:  # (`serve` did it all already; gunicorn -c conf/gunicorn.conf.py did not)
            for key in FOLDER_KEYS:
                make_own_folder(getattr(self.settings, key), self.settings)
            check_reachable(self.settings)
        except ConfigError as exc:
            raise RuntimeError(str(exc)) from None
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):  # nginx gives them to its workers' user
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        links_dir(self.settings).mkdir(parents=True, exist_ok=True)
        if other_user(self.settings) is not None:
            for folder in (self.run_dir, links_dir(self.settings)):
                open_folder(folder)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(nginx_conf(self.settings, self.app_address, self.run_dir, self.book_address))
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
        """Start nginx again whenever it dies; stop the service (on_give_up) when it keeps dying
        or cannot be started, and when this thread itself fails: never a service without a front."""
        try:
            self._watch_loop()
        except Exception:
            log.exception("front: the nginx watcher failed: stopping the service")
            self._give_up()

    def _watch_loop(self):
        failed_spawns = 0
        while not self._stopping.is_set():
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            dead, self.proc = self.proc, None  # (stop() signals no reaped pid)
            self._kill_group(dead.pid)  # a killed master leaves its worker behind
            now = time.monotonic()
            self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW_S] + [now]
            if len(self._deaths) > RESTARTS:
                log.error("front: nginx died %d times within %ds (last exit %s): stopping the service",
                          len(self._deaths), RESTART_WINDOW_S, code)
                self._give_up()
                return
            log.error("front: nginx %d died (exit %s): starting it again", dead.pid, code)
            while True:
                if self._stopping.wait(RESTART_DELAY_S * 2 ** failed_spawns):
                    return
                try:
                    self._spawn()
                    failed_spawns = 0
                    break
                except OSError as exc:  # EAGAIN from fork (a pids limit), ENOMEM: try again later
                    failed_spawns += 1
                    if failed_spawns >= SPAWN_TRIES:
                        log.error("front: nginx cannot be started (%s), %d times in a row: stopping the "
                                  "service", exc, failed_spawns)
                        self._give_up()
                        return
                    log.error("front: nginx cannot be started (%s): trying again", exc)

    def _give_up(self):
        self.gave_up = True
        self.on_give_up()

    def stop(self):
        self._stopping.set()
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: requests in flight end first
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(proc.pid)
        proc.wait()

    @staticmethod
    def _kill_group(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
