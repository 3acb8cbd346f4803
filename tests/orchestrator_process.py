"""The reference orchestrator as a real process (`transcode-orchestrator serve`) for tests."""
import requests

from worker_process import ServiceProcess, free_port


class OrchestratorProcess(ServiceProcess):
    name, module = "orchestrator", "transcode_worker.orchestrator"

    def __init__(self, workdir, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = settings.get("api_token", "")
        super().__init__(workdir, {"listen": f"127.0.0.1:{self.port}", "database": f"{workdir}/orch.db",
                                   **settings})

    # -- HTTP -----------------------------------------------------------------------------------
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path, **kwargs):
        return requests.get(self.url + path, headers=self.headers(), timeout=30, **kwargs)

    def post(self, path, body):
        return requests.post(self.url + path, json=body, headers=self.headers(), timeout=60)

    def delete(self, path):
        return requests.delete(self.url + path, headers=self.headers(), timeout=60)

    def play_url(self, source_path=None, job_id=None, **configuration):
        """A /play link for a player (POST /v1/play-links: signed when the orchestrator has a token)."""
        body = {"source_path": source_path} if source_path is not None else {"job_id": job_id}
        answer = self.post("/v1/play-links", {**body, "configuration": configuration})
        assert answer.status_code == 201, answer.text
        return answer.json()["url"]

    def workers(self):
        return {w["id"]: w for w in self.get("/v1/workers").json()["workers"]}

    def job(self, job_id):
        return self.get(f"/v1/jobs/{job_id}").json()
