"""OrchestratorClient: the worker's calls to the orchestrator, over one requests.Session.

Every call has a timeout and carries the bearer token when one is configured. A call answers
with the HTTP status; a network failure (refused, timed out, reset) raises Unreachable, and so
does a 5xx: both mean "try again later", which is what the caller needs to know.
"""
import logging

import requests

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 5.0


class Unreachable(Exception):
    """The orchestrator did not answer, or answered with a server error."""


class OrchestratorClient:
    def __init__(self, base_url, worker_id, api_token="", timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)):
        self.base_url = base_url.rstrip("/")
        self.worker_id = worker_id
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "transcode-worker"
        if api_token:
            self.session.headers["Authorization"] = f"Bearer {api_token}"

    def register(self, payload):
        """POST /v1/workers; returns the status code."""
        return self._call("POST", "/v1/workers", payload)

    def heartbeat(self, payload):
        """POST /v1/workers/<id>/heartbeats; returns the status code (404: register again)."""
        return self._call("POST", f"/v1/workers/{self.worker_id}/heartbeats", payload)

    def death_note(self, payload, timeout=None):
        """PATCH /v1/workers/<id>; returns the status code."""
        return self._call("PATCH", f"/v1/workers/{self.worker_id}", payload, timeout=timeout)

    def claim(self, job_id, timeout=None):
        """POST /v1/jobs/<id>/claim: (status, JSON answer) - 200 {"command"}: take the job;
        409 {"holder_url"}: it is held by a worker that answers; 404: no such job."""
        return self._ask("POST", f"/v1/jobs/{job_id}/claim", {"worker_id": self.worker_id}, timeout)

    def release(self, job_id, reason, timeout=None):
        """POST /v1/jobs/<id>/release: a claimed job could not be started here."""
        return self._call("POST", f"/v1/jobs/{job_id}/release", {"worker_id": self.worker_id, "reason": reason},
                          timeout=timeout)

    def _ask(self, method, path, payload, timeout=None):
        response = self._request(method, path, payload, timeout)
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body if isinstance(body, dict) else {}

    def _call(self, method, path, payload, timeout=None):
        response = self._request(method, path, payload, timeout)
        if response.status_code >= 400 and response.status_code != 404:
            log.warning("orchestrator refused %s %s: HTTP %d %s", method, path, response.status_code,
                        response.text[:300])
        return response.status_code

    def _request(self, method, path, payload, timeout):
        try:
            response = self.session.request(method, self.base_url + path, json=payload,
                                            timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise Unreachable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from None
        if response.status_code >= 500:
            raise Unreachable(f"{method} {path}: HTTP {response.status_code}")
        return response

    def close(self):
        self.session.close()
