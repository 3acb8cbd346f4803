"""A small real HTTP orchestrator for integration tests: it records every call the worker makes
and answers like the endpoint map says. It can be stopped and started again on the same port
(the orchestrator going down), and can forget the worker (404 to heartbeats until it registers)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Call:
    def __init__(self, method, path, headers, body):
        self.at = time.monotonic()
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def __repr__(self):
        return f"<{self.method} {self.path} at {self.at:.2f}>"


class OrchestratorStandIn:
    def __init__(self, port, token=""):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token = token
        self.calls = []
        self.known = set()
        self.on_call = None  # callback(call) run before answering
        self._server = None
        self._lock = threading.Lock()

    # -- what it received ---------------------------------------------------------------------
    def received(self, method=None, suffix=None):
        with self._lock:
            return [c for c in self.calls if (method is None or c.method == method)
                    and (suffix is None or c.path.endswith(suffix))]

    def registrations(self):
        return [c for c in self.received("POST") if c.path == "/v1/workers"]

    def heartbeats(self):
        return [c for c in self.received("POST", "/heartbeats")]

    def death_notes(self):
        return self.received("PATCH")

    def forget(self, worker_id):
        """As if the orchestrator had restarted with an empty database."""
        with self._lock:
            self.known.discard(worker_id)

    # -- up and down --------------------------------------------------------------------------
    def start(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                call = Call(self.command, self.path, dict(self.headers), json.loads(raw) if raw else None)
                with standin._lock:
                    standin.calls.append(call)
                if standin.on_call:
                    standin.on_call(call)
                self.send_response(standin._status(call))
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PATCH = _answer

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="orchestrator-standin", daemon=True).start()
        return self

    def _status(self, call):
        if self.token and call.headers.get("Authorization") != f"Bearer {self.token}":
            return 401
        parts = call.path.strip("/").split("/")
        with self._lock:
            if call.method == "POST" and parts == ["v1", "workers"]:
                self.known.add(call.body["id"])
                return 201
            if len(parts) >= 3 and parts[2] not in self.known:
                return 404
        return 204

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
