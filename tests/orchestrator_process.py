"""The reference orchestrator as a real process (`transcode-orchestrator serve`) for tests."""
import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from worker_process import free_port, wait_for


class OrchestratorProcess:
    def __init__(self, workdir, **settings):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = {"listen": f"127.0.0.1:{self.port}", "database": str(self.workdir / "orch.db"),
                         **settings}
        self.token = self.settings.get("api_token", "")
        self.config = self.workdir / "orchestrator.toml"
        self.config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in self.settings.items()))
        self.log_path = self.workdir / "orchestrator.log"
        self.proc = None

    def start(self, timeout=30):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODE_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "transcode_worker.orchestrator", "serve", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        wait_for(self._healthy, timeout, what=f"orchestrator on {self.url}")
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"orchestrator exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        return self.log_path.read_text(errors="replace")

    # -- HTTP -----------------------------------------------------------------------------------
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path, **kwargs):
        return requests.get(self.url + path, headers=self.headers(), timeout=30, **kwargs)

    def post(self, path, body):
        return requests.post(self.url + path, json=body, headers=self.headers(), timeout=60)

    def delete(self, path):
        return requests.delete(self.url + path, headers=self.headers(), timeout=60)

    def workers(self):
        return {w["id"]: w for w in self.get("/v1/workers").json()["workers"]}

    def job(self, job_id):
        return self.get(f"/v1/jobs/{job_id}").json()
