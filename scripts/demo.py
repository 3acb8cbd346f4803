"""`make demo`: the reference orchestrator and two workers on loopback, with sample media.

Prints the URL to open in a player; Enter kills the worker that holds the newest stream, its whole
service at once (no death note), and the film plays on from the other (docs/failover.rst);
DEMO_KILL_AFTER_S=<s> does it by itself that long after the first play. Ctrl-C stops everything
(each process by its pid, the workers first so their death notes reach the orchestrator), and
removes the demo's folders (the sample media is kept for next time).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

from transcode_worker.config import data_dir
from transcode_worker.sample import ensure_sample

ORCH_PORT = int(os.environ.get("DEMO_PORT", "8080"))
WORKER_PORTS = (ORCH_PORT + 1, ORCH_PORT + 2)


def write_toml(path, settings):
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    return path


def wait_healthy(url, proc, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: {what} exited with {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"demo: {what} did not answer on {url}")


def newest_job(orch_url):
    with urllib.request.urlopen(f"{orch_url}/v1/jobs", timeout=5) as answer:
        jobs = json.load(answer)["jobs"]
    return jobs[-1] if jobs else None


def kill_holder(orch_url, workers, killed):
    """SIGKILL the whole service of the worker holding the newest job (each process by its pid)."""
    job = newest_job(orch_url)
    if job is None or job["worker_id"] not in workers:
        print("demo: no stream is playing yet: open the URL above first", flush=True)
        return
    proc = workers[job["worker_id"]]
    victims = [proc.pid] + [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
    killed.add(proc)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    print(f"demo: killed {job['worker_id']} (pids {', '.join(map(str, victims))}), the holder of job "
          f"{job['job_id']}: the player goes on from the other worker", flush=True)
    for _ in range(40):
        time.sleep(0.5)
        now = newest_job(orch_url)
        if now and now["worker_id"] != job["worker_id"]:
            print(f"demo: job {job['job_id']} is on {now['worker_id']} now", flush=True)
            return


def killer(orch_url, workers, killed, after_s):
    """Enter (or DEMO_KILL_AFTER_S after the first play) kills the holder, once per worker."""
    if after_s:
        while newest_job(orch_url) is None:
            time.sleep(0.5)
        time.sleep(after_s)
        kill_holder(orch_url, workers, killed)
        return
    for _ in sys.stdin:
        kill_holder(orch_url, workers, killed)


def main():
    media = data_dir() / "media"
    print(f"demo: sample media in {media} (made once)", flush=True)
    sample = ensure_sample(str(media))
    work = Path(tempfile.mkdtemp(prefix="transcode-demo-"))
    work.chmod(0o711)  # run as root, the workers' nginx workers (nobody) must enter it
    procs, workers, killed = [], {}, set()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODE_")}

    def spawn(args, log_name):
        log = open(work / log_name, "ab")
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        procs.append(proc)
        return proc

    try:
        orch_url = f"http://127.0.0.1:{ORCH_PORT}"
        orch = spawn(["transcode_worker.orchestrator", "serve", "--config", str(write_toml(work / "orchestrator.toml", {
            "listen": f"127.0.0.1:{ORCH_PORT}", "database": str(work / "orchestrator.db"),
            "seen_within_s": 10.0, "offline_after_s": 15.0, "check_interval_s": 1.0}))], "orchestrator.log")
        wait_healthy(orch_url, orch, "the orchestrator")
        for n, port in enumerate(WORKER_PORTS, 1):
            folder = work / f"worker{n}"
            folder.mkdir()
            proc = spawn(["transcode_worker", "serve", "--config", str(write_toml(folder / "worker.toml", {
                "worker_id": f"demo-worker-{n}", "listen": f"127.0.0.1:{port}", "orchestrator_url": orch_url,
                "media_roots": [str(media)], "segment_root": str(folder / "segments"),
                "spool_dir": str(folder / "spool"), "heartbeat_interval_s": 2.0}))], f"worker{n}.log")
            wait_healthy(f"http://127.0.0.1:{port}", proc, f"worker {n}")
            workers[f"demo-worker-{n}"] = proc
        play = f"{orch_url}/play?path={urllib.parse.quote(str(sample))}"
        print(f"""
demo: orchestrator on {orch_url}, workers on ports {WORKER_PORTS[0]} and {WORKER_PORTS[1]}
      (logs in {work})

  Open in a player (it follows the redirect to the chosen worker):
    ffplay '{play}'
    mpv '{play}'          (or VLC: Media > Open Network Stream)
  The pool:  curl {orch_url}/v1/workers
  The jobs:  curl {orch_url}/v1/jobs

  Enter kills the worker holding the stream (its whole service, no death note): the film plays
  on from the other (a player with Content Steering, hls.js, without a stall; others through
  the orchestrator's redirects).
  Ctrl-C stops everything.
""", flush=True)
        after_s = float(os.environ.get("DEMO_KILL_AFTER_S", "0") or 0)
        threading.Thread(target=killer, args=(orch_url, workers, killed, after_s), daemon=True).start()
        while all(p.poll() is None for p in procs if p not in killed):
            time.sleep(0.5)
        print("demo: a process exited on its own; stopping the rest (see the logs)", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ndemo: stopping", flush=True)
    finally:
        for proc in reversed(procs):  # workers first: their death notes reach the orchestrator
            if proc.poll() is None and proc not in killed:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        subprocess.run(["rm", "-rf", "--", str(work)], check=False)
        print("demo: stopped", flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    main()
