"""The real service under gunicorn on loopback, for integration tests, and a player (FFmpeg)."""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import psutil
import requests

from transcode_worker.progress import ProgressParser


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class ServiceProcess:
    """`python -m <module> serve --config FILE` on loopback, with a TOML written from `settings`:
    the worker, or the reference orchestrator."""

    name = module = None

    def __init__(self, workdir, settings):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.config = self.workdir / f"{self.name}.toml"
        self.write_config()
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc = None

    def write_config(self, **changes):
        """The TOML file from `settings`, with `changes` (a running service reads it on SIGHUP)."""
        self.settings.update(changes)
        self.config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in self.settings.items()))

    def start(self, timeout=30):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODE_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "serve", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
        try:
            wait_for(self._healthy, timeout, what=f"{self.name} on {self.url} (log: {self.log_path})")
        except BaseException:  # nothing it started outlives a start that failed
            self.stop()
            raise
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still booting its worker
            return False

    def descendants(self):
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout=20):
        """SIGTERM the gunicorn master by pid, wait, then SIGKILL whatever of it is left."""
        if self.proc is None:
            return
        descendants = self.descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for proc in descendants:
            if not process_gone(proc.pid):
                proc.kill()

    def log(self):
        return self.log_path.read_text(errors="replace")


class WorkerProcess(ServiceProcess):
    """`transcode-worker serve` with test settings (short segments and waits, no library scan)."""

    name, module = "worker", "transcode_worker"

    def __init__(self, workdir, media_root, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.segment_root = Path(workdir) / "segments"
        Path(workdir).mkdir(parents=True, exist_ok=True)
        open_to_others(workdir)
        super().__init__(workdir, {
            "worker_id": "test-worker", "listen": f"127.0.0.1:{self.port}", "media_roots": [str(media_root)],
            "segment_root": str(self.segment_root), "spool_dir": str(Path(workdir) / "spool"),
            "segment_duration_s": 2.0, "playlist_wait_s": 20.0, "stop_grace_s": 3.0,
            "max_concurrent_jobs": 4, "log_level": "info",
            "library_scan_interval_s": 0,  # tests of the scan turn it on: elsewhere it only costs CPU
            "min_free_disk_bytes": 1024 * 1024,  # a test machine's disk may be small
            **settings,
        })

    def ffmpeg_pids(self):
        return sorted(p.pid for p in self.descendants() if _is_ffmpeg(p))

    def video_ffmpeg_pids(self):
        """The FFmpeg of the jobs' video runs (not their audio renditions', which read no video)."""
        return sorted(p.pid for p in self.descendants() if _is_ffmpeg(p) and "-vn" not in _argv(p))

    # -- HTTP -----------------------------------------------------------------------------------
    def auth(self):
        token = self.settings.get("api_token")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def post_job(self, body, path="/v1/jobs", **kwargs):
        return requests.post(self.url + path, json=body, timeout=30, **kwargs)

    def jobs(self):
        return requests.get(f"{self.url}/v1/jobs", headers=self.auth(), timeout=10).json()["jobs"]

    def job(self, job_id):
        return requests.get(f"{self.url}/v1/jobs/{job_id}", headers=self.auth(), timeout=10).json()

    def wait_state(self, job_id, states, timeout=60):
        return wait_for(lambda: (j := self.job(job_id)).get("state") in states and j, timeout,
                        what=f"job {job_id} in {states}")

    def delete(self, job_id):
        return requests.delete(f"{self.url}/v1/jobs/{job_id}", headers=self.auth(), timeout=30)

    def segments_served(self):
        """Segments the worker has booked as served (nginx books the files it sends itself a
        moment after it sent them)."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("transcode_segments_served_total"))


class SlowClients:
    """`count` connections that each send a request line and then a header line every
    `interval_s`, never ending their headers (slowloris): a broken client or a scanner. One
    that the server closes is opened again, so `count` stay open. Stopped by stop()."""

    def __init__(self, address, count, interval_s=1.0):
        self.host, port = address.rsplit(":", 1)
        self.port, self.count, self.interval_s = int(port), count, interval_s
        self.reopened = 0
        self._sockets = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-clients", daemon=True)

    def start(self):
        _raise_open_files_limit(self.count + 256)
        self._sockets = [self._open() for _ in range(self.count)]
        self._thread.start()
        return self

    def _open(self):
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
        return sock

    def _trickle(self):
        while not self._stop.wait(self.interval_s):
            for n, sock in enumerate(self._sockets):
                try:
                    sock.sendall(b"X-Trickle: 1\r\n")
                except OSError:  # the server gave up on it: another takes its place
                    sock.close()
                    try:
                        self._sockets[n] = self._open()
                        self.reopened += 1
                    except OSError:
                        pass

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        for sock in self._sockets:
            sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _raise_open_files_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted, hard))


SLOW_FFMPEG = """#!{python}
# FFmpeg held to {rate} of real time at one preset ({preset}; None: every run), as a machine too
# slow for the source would be: -readrate before the input. Any other preset, or the speed guard's
# light analysis and a sprint (x264 settings of their own), runs at full speed.
import os, sys
args = sys.argv[1:]
if "-i" in args and ({preset!r} is None or "{preset}" in args and "-x264-params" not in args):
    at = args.index("-i")
    args[at:at] = ["-readrate", "{rate}"]
os.execvp("ffmpeg", ["ffmpeg", *args])
"""


def ffmpeg_slow_at(preset, folder, rate=0.5):
    """An ffmpeg_path whose jobs at `preset` (as it is: not the speed guard's light analysis of
    it; None: every run, a sprint too) run at `rate` of real time (the speed guard's tests,
    players that wait)."""
    path = Path(folder) / f"ffmpeg-slow-at-{preset}"
    path.write_text(SLOW_FFMPEG.format(python=sys.executable, preset=preset, rate=rate))
    path.chmod(0o755)
    return str(path)


def open_to_others(folder):
    """Let every user enter `folder` and the temporary folders it is in (pytest makes them
    rwx------), as an operator would: run as root, the worker's nginx workers are nobody."""
    top, folder = Path(tempfile.gettempdir()).resolve(), Path(folder).resolve()
    for each in (folder, *folder.parents):
        if top not in each.parents:
            break
        each.chmod(each.stat().st_mode | 0o001)


def kill_service(worker):
    """SIGKILL every process of the worker's service at once: no death note, no goodbye."""
    processes = [psutil.Process(worker.proc.pid), *worker.descendants()]
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    wait_for(lambda: all(process_gone(p.pid) for p in processes), 10, what="the whole service gone")


def process_gone(pid):
    """True when `pid` has exited (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _argv(proc):
    try:
        return proc.cmdline()
    except psutil.NoSuchProcess:
        return []


def _is_ffmpeg(proc):
    try:
        return proc.name() == "ffmpeg"
    except psutil.NoSuchProcess:
        return False


def play(url, timeout=120, start_s=None):
    """FFmpeg as the player: read the HLS stream from its first segment (or from `start_s`) to its
    end, decoding every frame. Returns (exit code, seconds of media decoded, stderr)."""
    start = ["-ss", f"{start_s}"] if start_s is not None else []
    proc = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1",
         "-live_start_index", "0", *start, "-i", url, "-f", "null", "-"],
        capture_output=True, timeout=timeout,
    )
    parser = ProgressParser()
    blocks = [b for line in proc.stdout.decode().splitlines() if (b := parser.feed(line))]
    decoded = max((b.out_time_s or 0 for b in blocks), default=0.0)
    return proc.returncode, decoded, proc.stderr.decode(errors="replace")


def first_uri(playlist_url):
    """The absolute URL of the first entry (variant or segment) a playlist lists."""
    text = requests.get(playlist_url, timeout=30).text
    name = next(line for line in text.splitlines() if line and not line.startswith("#"))
    return urljoin(playlist_url, name)


def first_segment_url(multivariant_url):
    """The segment a player begins with, found the way a player finds it: the one that holds
    the media playlist's EXT-X-START offset (the first, without one)."""
    media_url = first_uri(multivariant_url)
    text = requests.get(media_url, timeout=30).text
    start = next((float(line.split("TIME-OFFSET=")[1].split(",")[0]) for line in text.splitlines()
                  if line.startswith("#EXT-X-START:")), 0.0)
    position, duration = 0.0, None
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):
            if position + duration > start + 1e-6:
                return urljoin(media_url, line)
            position += duration
    raise AssertionError(f"no segment holds the start {start}s of {media_url}")


def probe_duration(path_or_url):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          path_or_url], capture_output=True, timeout=60, check=True)
    return float(out.stdout.decode().strip())


def first_frame_luma(url, at=None):
    """Mean luma (0-255) of the first decoded frame at `url` (or of the frame at `at` seconds)."""
    seek = ["-ss", f"{at:.3f}"] if at is not None else []
    out = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *seek, "-i", url,
                          "-frames:v", "1", "-vf", "scale=1:1:flags=area", "-pix_fmt", "gray",
                          "-f", "rawvideo", "-"], capture_output=True, timeout=60, check=True)
    return out.stdout[0]


class ProcessWatch:
    """Every process a service (its gunicorn master and below) started while the watch was on:
    {pid: argv}, polled every 10 ms."""

    def __init__(self, service):
        self.service, self.seen = service, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="process-watch", daemon=True)

    def _watch(self):
        while not self._stop.wait(0.01):
            for proc in self.service.descendants():
                try:
                    self.seen.setdefault(proc.pid, proc.cmdline() or [proc.name()])
                except psutil.Error:  # gone between the listing and the look
                    pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
