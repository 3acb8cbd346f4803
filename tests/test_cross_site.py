"""The job API is closed to web pages (issue 25, hole 3), behind nginx or without it.

A page on any site a viewer visits can make the browser send requests to a worker on the
viewer's network: a form or ``text/plain`` POST goes without a CORS preflight. Such a page must
not start, replace or stop a job; programs (requests' json=, curl --json) keep commanding it,
and players keep the HLS answers with their CORS.
"""
import pytest
import requests

import media_files as mf
from transcode_worker.api.jobs import foreign_origin, origin_of
from transcode_worker.origins import foreign_host, host_of

EVIL = "http://evil.example"


def test_origins_are_compared_by_scheme_host_and_port():
    own = "http://192.168.1.20:8081"
    assert origin_of("HTTP://Worker.LAN") == ("http", "worker.lan", 80)
    assert origin_of("https://[::1]") == ("https", "::1", 443)
    assert origin_of("null") is None and origin_of("http://x:99999") is None
    assert not foreign_origin("POST", None, own)  # a program: no Origin
    assert not foreign_origin("POST", "http://192.168.1.20:8081", own)
    assert not foreign_origin("GET", EVIL, own) and not foreign_origin("HEAD", EVIL, own)
    for method in ("POST", "DELETE", "PUT", "PATCH", "OPTIONS"):
        assert foreign_origin(method, EVIL, own)
    for origin in ("null", "https://192.168.1.20:8081", "http://192.168.1.20", "http://192.168.1.20:8082", "junk"):
        assert foreign_origin("POST", origin, own), origin


@pytest.fixture(params=["nginx", "none"])
def fronted(request, make_worker):
    """A worker behind nginx, and one without it: the API answers web pages the same."""
    return make_worker(front=request.param, speed_guard_s=0)  # one FFmpeg per job: its pid tells a restart


def no_cors(response):
    return not any(h.lower().startswith("access-control-") for h in response.headers)


def nothing_started(worker, before_log):
    assert worker.jobs() == []
    assert worker.ffmpeg_pids() == []
    assert worker.log().count("FFmpeg started") == before_log
    assert not worker.segment_root.exists() or not (worker.segment_root / "page").exists()


def test_a_web_page_cannot_command_the_worker(fronted, media_root):
    worker = fronted
    source = str(media_root / mf.LONG)
    command = f'{{"job_id": "page", "source_path": "{source}", "configuration": {{"bitrate_bps": 300000}}}}'
    before_log = worker.log().count("FFmpeg started")

    # the preflight a page's fetch() of a JSON command needs is refused, and allows nothing
    preflight = requests.options(f"{worker.url}/v1/jobs", timeout=10, headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 403 and no_cors(preflight)
    # what a page sends without a preflight: a text/plain or form POST
    for path in ("/v1/jobs", "/v1/workers/test-worker/heartbeats"):
        sneaked = requests.post(worker.url + path, data=command, timeout=30,
                                headers={"Origin": EVIL, "Content-Type": "text/plain"})
        assert sneaked.status_code == 403 and no_cors(sneaked), sneaked.text
    # DNS rebinding: evil.example resolved to the worker, so Host names it too
    rebound = requests.post(worker.url + "/v1/jobs", data=command, timeout=30, headers={
        "Origin": f"http://evil.example:{worker.port}", "Host": f"evil.example:{worker.port}",
        "Content-Type": "application/json"})
    assert rebound.status_code == 403, rebound.text
    nothing_started(worker, before_log)

    # without an Origin, only JSON is a command: a form or text/plain body names what is needed
    for body, kind in ((command, "text/plain"), ("job_id=page&source_path=" + source, "application/x-www-form-urlencoded"),
                       (command, "multipart/form-data; boundary=x"), (command, None)):
        refused = requests.post(worker.url + "/v1/jobs", data=body.encode(), timeout=30,
                                headers={"Content-Type": kind} if kind else {})
        assert refused.status_code == 415 and "application/json" in refused.json()["error"], (kind, refused.text)
        assert no_cors(refused)
    form = requests.post(worker.url + "/v1/jobs", data={"job_id": "page", "source_path": source}, timeout=30)
    assert form.status_code == 415
    nothing_started(worker, before_log)

    # a program: requests' json=, and curl's --json (a charset is allowed)
    started = worker.post_job({"job_id": "page", "source_path": source, "configuration": {"bitrate_bps": 300000}})
    assert started.status_code == 202 and no_cors(started), started.text
    pid = worker.job("page")["pid"]
    again = requests.post(worker.url + "/v1/jobs", data=command, timeout=30,
                          headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"})
    assert again.status_code == 200, again.text
    # the worker's own origin (advertise_url's) is no foreign page
    own = requests.post(worker.url + "/v1/jobs", data=command, timeout=30,
                        headers={"Content-Type": "application/json", "Origin": worker.url})
    assert own.status_code == 200, own.text

    # a page can neither replace the running command nor stop the job
    replaced = requests.post(worker.url + "/v1/jobs", data=command.replace("300000", "400000"), timeout=30,
                             headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert replaced.status_code == 403
    stopped = requests.delete(f"{worker.url}/v1/jobs/page", headers={"Origin": EVIL}, timeout=30)
    assert stopped.status_code == 403 and no_cors(stopped)
    job = worker.job("page")
    assert job["state"] in ("STARTING", "RUNNING", "COMPLETED") and job["pid"] == pid
    assert job["configuration"]["bitrate_bps"] == 300000
    for answer in (requests.get(f"{worker.url}/v1/jobs", headers={"Origin": EVIL}, timeout=10),
                   requests.get(f"{worker.url}/v1/jobs/page", headers={"Origin": EVIL}, timeout=10)):
        assert answer.status_code == 200 and no_cors(answer)

    # players keep the HLS answers, cross-origin
    playlist = requests.get(f"{worker.url}/page.m3u8", headers={"Origin": EVIL}, timeout=30)
    assert playlist.status_code == 200 and playlist.headers["Access-Control-Allow-Origin"] == "*"
    player_preflight = requests.options(f"{worker.url}/page.m3u8", timeout=10, headers={
        "Origin": EVIL, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"})
    assert player_preflight.ok and player_preflight.headers["Access-Control-Allow-Origin"] == "*"
    health = requests.get(f"{worker.url}/healthz", headers={"Origin": EVIL}, timeout=10)
    assert health.status_code == 200

    assert worker.delete("page").status_code == 200  # a program stops it


def test_a_host_is_foreign_unless_it_names_the_worker_or_is_an_address():
    own = frozenset({"localhost", "worker.lan", "tv"})
    assert host_of("Worker.LAN.:8081") == "worker.lan" and host_of("[::1]:8081") == "::1"
    assert host_of("[::1") is None and host_of("") is None
    for host in ("localhost", "localhost:8081", "WORKER.lan:8081", "worker.lan.", "tv",
                 "192.168.1.20:8081", "10.0.0.1", "[::1]:8081", "[fe80::1]"):  # an address: never rebound
        assert not foreign_host(host, own), host
    for host in ("evil.example", "evil.example:8081", "worker.lan.evil.example", "localhost.evil.example",
                 "", None, "[::1", "a b", "worker.lan@evil.example"):
        assert foreign_host(host, own), host


@pytest.fixture(params=["nginx", "none"])
def named_worker(request, make_worker):
    """A worker also reached as worker.lan (allowed_hosts), behind nginx and without it."""
    return make_worker(front=request.param, allowed_hosts=["Worker.LAN"])


def test_the_job_api_answers_only_to_the_workers_own_host_names(named_worker, media_root):
    """DNS rebinding: a page whose domain now resolves to the worker is the worker's own site to
    the browser, so it could read the answers of GETs (F: /v1/jobs, /v1/media answered 200)."""
    worker = named_worker
    source = str(media_root / mf.LONG)
    rebound = {"Host": f"evil.example:{worker.port}"}
    calls = (("get", "/v1/jobs", {}), ("get", "/v1/jobs/page", {}),
             ("get", "/v1/media", {"params": {"source_path": source}}),
             ("post", "/v1/jobs", {"json": {"job_id": "page", "source_path": source}}),
             ("delete", "/v1/jobs/page", {}))
    for method, path, kwargs in calls:
        refused = getattr(requests, method)(worker.url + path, headers=rebound, timeout=30, **kwargs)
        assert refused.status_code == 400 and "host" in refused.json()["error"], (method, path, refused.text)
        assert no_cors(refused)
    assert worker.jobs() == [] and worker.ffmpeg_pids() == []

    # the names the worker is reached by: its address, localhost, allowed_hosts (any case, any port)
    for host in (f"127.0.0.1:{worker.port}", f"localhost:{worker.port}", f"worker.lan:{worker.port}", "WORKER.LAN"):
        for path, kwargs in (("/v1/jobs", {}), ("/v1/media", {"params": {"source_path": source}})):
            answer = requests.get(worker.url + path, headers={"Host": host}, timeout=60, **kwargs)
            assert answer.status_code == 200, (host, path, answer.text)

    # players and monitors keep answering any Host
    assert requests.get(worker.url + "/healthz", headers=rebound, timeout=10).status_code == 200
    assert requests.get(worker.url + "/metrics", headers=rebound, timeout=10).status_code == 200
    missing = requests.get(worker.url + "/page.m3u8", headers=rebound, timeout=30)
    assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == "*"
