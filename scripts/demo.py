"""`make demo`: the reference orchestrator and two workers on loopback, with sample media.

Prints the URL to open in a player; Ctrl-C stops everything (each process by its pid, the
workers first so their death notes reach the orchestrator), and removes the demo's folders
(the sample media is kept for next time).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

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


def main():
    media = data_dir() / "media"
    print(f"demo: sample media in {media} (made once)", flush=True)
    sample = ensure_sample(str(media))
    work = Path(tempfile.mkdtemp(prefix="transcode-demo-"))
    work.chmod(0o711)  # run as root, the workers' nginx workers (nobody) must enter it
    procs = []
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
        play = f"{orch_url}/play?path={urllib.parse.quote(str(sample))}"
        print(f"""
demo: orchestrator on {orch_url}, workers on ports {WORKER_PORTS[0]} and {WORKER_PORTS[1]}
      (logs in {work})

  Open in a player (it follows the redirect to the chosen worker):
    ffplay '{play}'
    mpv '{play}'          (or VLC: Media > Open Network Stream)
  The pool:  curl {orch_url}/v1/workers
  The jobs:  curl {orch_url}/v1/jobs

  Ctrl-C stops everything.
""", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("demo: a process exited on its own; stopping the rest (see the logs)", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ndemo: stopping", flush=True)
    finally:
        for proc in reversed(procs):  # workers first: their death notes reach the orchestrator
            if proc.poll() is None:
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
