"""`make bench`'s failover part (bench.py imports it): what a stream that outlives its worker costs.

- the orchestrator under 1,000 steered viewers: each asks it where to go (the steering manifest)
  every 4 s, as often as it fetches a segment (segments go to workers, never through the
  orchestrator); p50 and p99 of its answers, measured by clients on the same machine;
- the stall of a player with nothing buffered when the worker holding its stream dies, with a
  death note (SIGTERM) and silently (the whole service SIGKILLed; the seeds' offline_after_s of
  45 s, so only the failover explains the move): from the death to the last byte of the next
  segment from the other worker, the way hls.js goes (the dead worker's answer, then the next
  pathway). A player with its usual buffer (hls.js holds 30 s) sees no stall at all.
"""
import http.server
import json
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

import m3u8
import requests

from orchestrator_process import OrchestratorProcess
from worker_process import WorkerProcess, kill_service, wait_for

TOKEN = "bench-token"
VIEWERS = 1000
EVERY_S = 4.0
STUB_PLAYLIST = ('#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="English",'
                 'DEFAULT=YES,AUTOSELECT=YES,URI="{job}.audio0.m3u8"\n'
                 '#EXT-X-STREAM-INF:BANDWIDTH=5000000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="stereo"\n{job}.media.m3u8\n')


class StubWorker(http.server.BaseHTTPRequestHandler):
    """A worker as the orchestrator sees it when placing and steering: it takes every job."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body, kind="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/v1/media":
            self._answer(200, json.dumps({"video": {"codec": "h264"}, "audio": [], "subtitles": []}))
        elif path.endswith(".m3u8"):
            self._answer(200, STUB_PLAYLIST.format(job=path[1:-5]), "application/vnd.apple.mpegurl")
        else:
            self._answer(200, '{"status": "ok"}')

    def do_POST(self):
        command = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._answer(202, json.dumps({"job_id": command["job_id"], "state": "STARTING",
                                      "playlist_url": f"{url}/{command['job_id']}.m3u8"}))


def stub_workers(orch, count):
    servers = []
    for n in range(count):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubWorker)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        registered = orch.post("/v1/workers", {
            "id": f"stub{n}", "url": f"http://127.0.0.1:{server.server_address[1]}", "max_concurrent_jobs": VIEWERS,
            "version": "bench", "encoders": ["libx264"], "lost_jobs": [], "unclean_restart": False,
            "static_specs": {"cpu_model": "x", "total_threads": 2, "hardware_acceleration": []}})
        assert registered.status_code == 201, registered.text
    return servers


def orchestrator_load(tmp, seconds):
    """p50 and p99 (ms) of the orchestrator's steering answers to VIEWERS viewers, one each EVERY_S."""
    orch = OrchestratorProcess(tmp / "bench-orchestrator", api_token=TOKEN, log_level="warning",
                               seen_within_s=3600.0, offline_after_s=3600.0).start()
    servers = []
    try:
        servers = stub_workers(orch, 3)
        steering = []
        with ThreadPoolExecutor(16) as pool:
            streams = list(pool.map(lambda n: orch.post("/v1/play", {"source_path": f"/films/{n}.mkv"})
                                    .json()["playlist_url"], range(VIEWERS)))
            for text, stream in zip(pool.map(lambda url: requests.get(url, timeout=30).text, streams), streams):
                tag = next(line for line in text.splitlines() if line.startswith("#EXT-X-CONTENT-STEERING"))
                steering.append(urljoin(stream, tag.split('SERVER-URI="')[1].split('"')[0]))
        times = []
        lock = threading.Lock()
        started = time.monotonic()

        def viewers(urls, offset):
            session = requests.Session()
            due = started + offset
            while due < started + seconds:
                for url in urls:  # each of this thread's viewers once per EVERY_S, spread out
                    time.sleep(max(0.0, due - time.monotonic()))
                    sent = time.perf_counter()
                    answer = session.get(url, params={"_HLS_pathway": "stub0", "_HLS_throughput": "5000000"},
                                         timeout=10)
                    answer.content
                    took = time.perf_counter() - sent
                    with lock:
                        times.append(took if answer.status_code == 200 else float("inf"))
                    due += EVERY_S / len(urls)
        threads = 32
        share = [steering[n::threads] for n in range(threads)]
        workers = [threading.Thread(target=viewers, args=(urls, n * EVERY_S / VIEWERS)) for n, urls in enumerate(share)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        rate = len(times) / (time.monotonic() - started)
        times.sort()
        p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
        return p50 * 1000, p99 * 1000, rate
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        orch.stop()


def failover_stall(media_root, tmp, source, death, runs):
    """Seconds from a worker's death to the last byte of the next segment from the other worker,
    for a player with nothing buffered, medians over `runs`."""
    stalls = []
    for run in range(runs):
        work = tmp / f"failover-{death.replace(' ', '-')}-{run}"
        orch = OrchestratorProcess(work / "orchestrator", api_token=TOKEN, log_level="warning", seen_within_s=5.0,
                                   offline_after_s=45.0, check_interval_s=0.5).start()
        workers = {}
        try:
            for worker_id in ("w1", "w2"):
                workers[worker_id] = WorkerProcess(work / worker_id, media_root, worker_id=worker_id,
                                                   orchestrator_url=orch.url, api_token=TOKEN,
                                                   heartbeat_interval_s=1.0, log_level="warning").start()
            wait_for(lambda: len(orch.workers()) == 2, 20, what="both workers in the pool")
            created = orch.post("/v1/play", {"source_path": str(source), "configuration": {"bitrate_bps": 1_000_000}})
            body = created.json()
            holder, other = workers[body["worker_id"]], workers["w2" if body["worker_id"] == "w1" else "w1"]
            variant = m3u8.loads(requests.get(body["playlist_url"], timeout=60).text).playlists[0].uri
            segments = m3u8.loads(requests.get(variant, timeout=60).text).segments
            number = len(segments) // 3  # the viewer is here; the segment it needs next is one its
            wait_for(lambda: requests.get(urljoin(variant, segments[number].uri), timeout=60).status_code == 200,
                     60, what="the viewer there")
            number = min(number + 20, len(segments) - 1)  # worker has not made (it keeps 30 s ahead)
            died = time.monotonic()
            if death == "silent":
                kill_service(holder)
            else:
                holder.proc.send_signal(signal.SIGTERM)
            try:  # the player asks its worker first, as it always does
                requests.get(urljoin(variant, segments[number].uri), timeout=10)
            except requests.ConnectionError:
                pass
            moved = variant.replace(urlsplit(variant).netloc, urlsplit(other.url).netloc)
            answer = requests.get(urljoin(moved, segments[number].uri), timeout=30)
            if answer.status_code == 200:
                stalls.append(time.monotonic() - died)
            if death != "silent":
                holder.proc.wait(30)
        finally:
            for worker in workers.values():
                worker.stop()
            orch.stop()
    return statistics.median(stalls) if stalls else None, len(stalls)
