"""The orchestrator's worker-facing endpoints in process (Flask test client, real SQLite)."""
import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import requests
import responses

from transcode_worker.orchestrator import links
from transcode_worker.orchestrator.app import create_app
from transcode_worker.schemas import seek_time

TOKEN = {"Authorization": "Bearer t0k"}
REG = {"id": "w1", "static_specs": {"cpu_model": "x", "total_threads": 4, "hardware_acceleration": []},
       "url": "http://127.0.0.1:9", "max_concurrent_jobs": 2, "version": "0.1.0", "encoders": ["libx264"],
       "lost_jobs": [], "unclean_restart": False}


def signed(**query):
    """A /play link signed with the test orchestrator's token."""
    return "/play?" + links.mint("t0k", list(query.items()), 600)


def beat(recorded_at, jobs=(), replayed=False):
    return {"status": "BUSY" if jobs else "IDLE", "reason": None,
            "telemetry": {"cpu_usage": 5.0, "gpu_usage": None, "ram_free_bytes": 1 << 30, "temp_c": None,
                          "gpu_temp_c": None},
            "job_context": jobs[0] if jobs else None, "active_jobs": len(jobs), "jobs": list(jobs),
            "recorded_at": recorded_at.isoformat(), "replayed": replayed}


def context(job_id, position, state="RUNNING"):
    return {"active_job_id": job_id, "progress": position / 6, "speed": "2x", "last_segment_id": 3,
            "state": state, "position_s": position, "error": None}


@pytest.fixture
def client(tmp_path, request):
    settings = SimpleNamespace(database=str(tmp_path / "o.db"), api_token="t0k", seen_within_s=30.0,
                               offline_after_s=45.0, check_interval_s=60.0, worker_timeout_s=1.0,
                               default_bitrate_bps=4_000_000, prefer_same_subnet=True, segment_duration_s=4.0, first_segment_s=1.0,
                               listen="0.0.0.0:8080", public_url="")
    for key, value in getattr(request, "param", {}).items():
        setattr(settings, key, value)
    app = create_app(settings)
    yield app.test_client(), app.extensions["transcode_orchestrator"]
    app.extensions["transcode_orchestrator"].shutdown()


def test_worker_calls_need_the_token(client):
    c, _ = client
    assert c.post("/v1/workers", json=REG).status_code == 401
    assert c.post("/v1/workers", json=REG, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.post("/v1/workers", json=REG, headers=TOKEN).status_code == 201


def test_heartbeat_of_an_unknown_worker_is_404_and_bad_payloads_422(client):
    c, _ = client
    now = datetime.now(timezone.utc)
    assert c.post("/v1/workers/w1/heartbeats", json=beat(now), headers=TOKEN).status_code == 404
    c.post("/v1/workers", json=REG, headers=TOKEN)
    bad = c.post("/v1/workers/w1/heartbeats", json={**beat(now), "status": "HAPPY"}, headers=TOKEN)
    assert bad.status_code == 422 and "status" in bad.get_json()["fields"]
    assert c.post("/v1/workers", json={**REG, "url": "not a url"}, headers=TOKEN).status_code == 422
    assert c.patch("/v1/workers/w1", json={"status": "ONLINE"}, headers=TOKEN).status_code == 422


def test_a_body_nested_too_deep_is_a_bad_body_not_a_crash(client):
    c, _ = client
    deep = "[" * 5000 + "]" * 5000
    c.post("/v1/workers", json=REG, headers=TOKEN)
    answer = c.post("/v1/play", data=deep, content_type="application/json", headers=TOKEN)
    assert answer.status_code == 400 and answer.get_json()["error"]
    beat_answer = c.post("/v1/workers/w1/heartbeats", data=deep, content_type="application/json", headers=TOKEN)
    assert beat_answer.status_code == 422


def test_an_older_replayed_record_never_overwrites_a_newer_one(client):
    c, ctx = client
    c.post("/v1/workers", json=REG, headers=TOKEN)
    ctx.store.add_job("j1", "/m/x.mkv", {"bitrate_bps": 1})
    ctx.store.update_job("j1", worker_id="w1", state="RUNNING")
    now = datetime.now(timezone.utc)
    c.post("/v1/workers/w1/heartbeats", json=beat(now, [context("j1", 50.0)]), headers=TOKEN)
    old = beat(now - timedelta(seconds=30), [context("j1", 10.0)], replayed=True)
    assert c.post("/v1/workers/w1/heartbeats", json=old, headers=TOKEN).status_code == 204
    assert ctx.store.job("j1")["position_s"] == 50.0
    last_seen = ctx.store.worker("w1")["last_seen"]
    newer = beat(now + timedelta(seconds=1), [context("j1", 60.0, "COMPLETED")], replayed=True)
    c.post("/v1/workers/w1/heartbeats", json=newer, headers=TOKEN)
    job = ctx.store.job("j1")
    assert job["position_s"] == 60.0 and job["state"] == "COMPLETED"
    assert ctx.store.worker("w1")["last_seen"] == last_seen  # a replay is history, not a sign of life


def test_a_death_note_with_no_worker_left_queues_the_jobs(client):
    c, ctx = client
    c.post("/v1/workers", json=REG, headers=TOKEN)
    ctx.store.add_job("j2", "/m/x.mkv", {"bitrate_bps": 1})
    ctx.store.update_job("j2", worker_id="w1", state="RUNNING", position_s=42.5)
    assert c.patch("/v1/workers/w1", json={"status": "OFFLINE", "reason": "SHUTDOWN"}, headers=TOKEN).status_code == 204
    assert ctx.store.worker("w1")["status"] == "OFFLINE"
    job = ctx.store.job("j2")
    assert job["state"] == "QUEUED" and job["worker_id"] is None and "no worker" in job["error"]
    sent = c.get(signed(job_id="j2"))
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/streams/j2.m3u8")
    waiting = c.get("/streams/j2.m3u8")
    assert waiting.status_code == 503 and "waiting for a worker" in waiting.get_json()["error"]


def test_play_without_workers_says_why(client):
    c, _ = client
    answer = c.get(signed(path="/m/x.mkv"))
    assert answer.status_code == 503 and "no worker has registered" in answer.get_json()["error"]
    assert answer.headers["Retry-After"]
    assert c.get(signed()).status_code == 400
    assert c.get(signed(path="/m/x.mkv", seek_time="soon")).status_code == 422
    for bad in ("audio_stream=first", "audio_stream=-1", "audio_language=klingon", "subtitle_stream=x"):
        answer = c.get(signed(path="/m/x.mkv", **dict([bad.split("=")])))
        assert answer.status_code == 422 and bad.split("=")[0] in str(answer.get_json()["fields"]), bad


def test_seek_time_format():
    assert seek_time(0) == "00:00:00.000"
    assert seek_time(3725.5) == "01:02:05.500"


@pytest.mark.parametrize("method, path", [
    ("get", signed(job_id="nope")), ("get", "/v1/jobs/nope"), ("post", "/v1/jobs/nope/seek"),
    ("delete", "/v1/jobs/nope"),
])
def test_an_unknown_job_is_404_everywhere(client, method, path):
    c, _ = client
    response = getattr(c, method)(path, json={"seek_time": "00:01:00"} if method == "post" else None,
                                  headers=TOKEN)
    assert response.status_code == 404 and response.get_json()["error"] == "unknown job"


# -- what a source is: asked of a worker, never probed here; no lock across a call -----------
W1, W2 = "http://w1.test:8081", "http://w2.test:8081"
HEVC = {"source_path": "/srv/nas/film.mkv", "video": {"codec": "hevc"}, "audio": [], "subtitles": []}
H264 = {**HEVC, "video": {"codec": "h264"}}


def placed(job_id, worker_url):
    return {"job_id": job_id, "state": "STARTING", "playlist_url": f"{worker_url}/{job_id}.m3u8"}


def job_answer(worker_url):
    """A worker's 202 to a job command, for whatever job id it names."""
    def answer(request):
        body = json.loads(request.body)
        return 202, {}, json.dumps(placed(body["job_id"], worker_url))
    return answer


@pytest.fixture
def pool(client):
    """w1 (software only) and w2 (an HEVC encoder, one job running) registered, with `responses`
    standing in for them."""
    c, ctx = client
    c.post("/v1/workers", json={**REG, "id": "w1", "url": W1}, headers=TOKEN)
    c.post("/v1/workers", json={**REG, "id": "w2", "url": W2, "encoders": ["libx264", "hevc_nvenc"]}, headers=TOKEN)
    c.post("/v1/workers/w2/heartbeats", json={**beat(datetime.now(timezone.utc)), "active_jobs": 1}, headers=TOKEN)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield c, ctx, rsps


def asked(rsps, path):
    return [call.request.url for call in rsps.calls if urlsplit(call.request.url).path == path]


def test_a_worker_says_what_a_source_is_and_its_refusal_is_the_answer(pool):
    c, ctx, rsps = pool
    why = "'/srv/nas/film.mkv': no such file"
    rsps.get(W1 + "/v1/media", status=404, json={"error": why, "fields": {"source_path": [why]}})
    rsps.get(W2 + "/v1/media", status=404, json={"error": why, "fields": {"source_path": [why]}})
    rsps.add_callback(responses.POST, W1 + "/v1/jobs", callback=job_answer(W1))
    rsps.add_callback(responses.POST, W2 + "/v1/jobs", callback=job_answer(W2))
    answer = c.get(signed(path="/srv/nas/film.mkv"))
    assert answer.status_code == 404, answer.get_json()
    assert answer.get_json()["error"] == why and answer.get_json()["fields"] == {"source_path": [why]}
    assert asked(rsps, "/v1/media") and not asked(rsps, "/v1/jobs")  # nothing started
    assert ctx.store.jobs() == []


def test_an_hevc_source_goes_to_the_worker_that_decodes_it(pool):
    c, ctx, rsps = pool
    rsps.get(W1 + "/v1/media", json=HEVC)  # w1 is the less loaded: the first asked
    rsps.add_callback(responses.POST, W1 + "/v1/jobs", callback=job_answer(W1))
    rsps.add_callback(responses.POST, W2 + "/v1/jobs", callback=job_answer(W2))
    answer = c.post("/v1/play", json={"source_path": "/srv/nas/film.mkv"}, headers=TOKEN)
    assert answer.status_code == 201 and answer.get_json()["worker_id"] == "w2"
    assert asked(rsps, "/v1/jobs") == [W2 + "/v1/jobs"]


def test_a_worker_that_does_not_answer_is_skipped_and_answers_are_kept_once_per_path(pool):
    c, ctx, rsps = pool
    rsps.get(W1 + "/v1/media", body=requests.ConnectTimeout("no answer"))
    rsps.get(W2 + "/v1/media", json=H264)
    rsps.add_callback(responses.POST, W1 + "/v1/jobs", callback=job_answer(W1))
    rsps.add_callback(responses.POST, W2 + "/v1/jobs", callback=job_answer(W2))
    first = c.post("/v1/play", json={"source_path": "/srv/nas/./film.mkv"}, headers=TOKEN)
    assert first.status_code == 201 and first.get_json()["worker_id"] == "w2"
    assert len(asked(rsps, "/v1/media")) == 2
    # another spelling of the same path: known already, nobody is asked again
    again = c.post("/v1/play", json={"source_path": "//srv/nas/x/../film.mkv"}, headers=TOKEN)
    assert again.status_code == 201 and len(asked(rsps, "/v1/media")) == 2


def test_what_workers_said_is_kept_bounded_and_for_a_while():
    from transcode_worker.orchestrator.dispatch import SourceFacts, path_key

    now = [0.0]
    facts = SourceFacts(size=2, ttl_s=60.0, clock=lambda: now[0])
    for n in range(3):
        facts.put(f"/m/{n}.mkv", "h264")
    assert len(facts) == 2 and facts.get("/m/0.mkv") is None and facts.get("/m/./2.mkv") == "h264"
    assert path_key("//m//a/../2.mkv") == "/m/2.mkv"
    now[0] = 61.0
    assert facts.get("/m/2.mkv") is None


def test_no_placement_waits_for_a_call_another_one_makes(pool):
    c, ctx, rsps = pool
    seen = {}

    def second_play():
        ctx.store.add_job("j-b", "/srv/nas/b.mkv", {"bitrate_bps": 1})
        seen["b"] = ctx.dispatcher.place("j-b", "/srv/nas/b.mkv", {"bitrate_bps": 1})[0]["id"]

    def slow(answer):
        def callback(request):  # while the first play's call is on its way, the second one is placed
            if "first" not in seen:
                seen["first"] = request.url
                seen["other"] = threading.Thread(target=second_play, name="second-play")
                seen["other"].start()
                seen["other"].join(5)
                seen["b_done_meanwhile"] = not seen["other"].is_alive()
            return answer(request)
        return callback

    media = lambda request: (200, {}, json.dumps(H264))  # noqa: E731
    for url in (W1, W2):
        rsps.add_callback(responses.GET, url + "/v1/media", callback=slow(media))
        rsps.add_callback(responses.POST, url + "/v1/jobs", callback=slow(job_answer(url)))
    answer = c.get(signed(path="/srv/nas/a.mkv"))
    seen["other"].join(10)  # (where a lock is held across the call, the second play waits for it)
    assert answer.status_code == 302
    assert seen["b_done_meanwhile"] and seen["b"]


def test_a_seek_the_holder_refuses_is_refused(pool):
    c, ctx, rsps = pool
    ctx.store.add_job("j3", "/srv/nas/film.mkv", {"bitrate_bps": 1})
    ctx.store.update_job("j3", worker_id="w1", state="RUNNING")
    why = "seek_time is beyond the source's end"
    for url in (W1, W2):
        rsps.get(url + "/v1/media", json=H264)
        rsps.post(url + "/v1/jobs", status=422, json={"error": why, "fields": {"configuration": {"seek_time": [why]}}})
    answer = c.post("/v1/jobs/j3/seek", json={"seek_time": "09:00:00"}, headers=TOKEN)
    assert answer.status_code == 422 and answer.get_json()["error"] == why
    assert ctx.store.job("j3")["worker_id"] == "w1"


# -- silence on the monotonic clock: a step of the wall clock (NTP) neither kills nor hides --------
@pytest.fixture
def clocks(monkeypatch):
    """The orchestrator modules' clocks, by hand: `wall` is added to time.time() (an NTP step),
    `mono` is what time.monotonic() says (still unless a test moves it). Asked before `pool`, so
    that the dispatcher starts on it."""
    from transcode_worker.orchestrator import api, dispatch, store

    clock = SimpleNamespace(wall=0.0, mono=time.monotonic())
    shim = SimpleNamespace(time=lambda: time.time() + clock.wall, monotonic=lambda: clock.mono)
    for module in (api, dispatch, store):
        monkeypatch.setattr(module, "time", shim)
    return clock


def answer_plays(rsps, *urls):
    for url in urls:
        rsps.get(url + "/v1/media", json=H264)
        rsps.add_callback(responses.POST, url + "/v1/jobs", callback=job_answer(url))


def test_a_wall_clock_step_forward_takes_no_worker_off_the_pool(clocks, pool):
    c, ctx, rsps = pool
    answer_plays(rsps, W1, W2)
    ctx.store.add_job("j5", "/srv/nas/film.mkv", {"bitrate_bps": 1})
    ctx.store.update_job("j5", worker_id="w1", state="RUNNING", position_s=12.0)
    clocks.wall = 3600.0  # NTP steps the wall clock an hour forward, between two heartbeats
    clocks.mono += 2.0
    ctx.dispatcher.check()
    assert {w["id"]: w["status"] for w in ctx.store.workers()} == {"w1": "IDLE", "w2": "IDLE"}
    job = ctx.store.job("j5")
    assert job["worker_id"] == "w1" and job["requeues"] == 0 and job["state"] == "RUNNING"
    answer = c.post("/v1/play", json={"source_path": "/srv/nas/film.mkv"}, headers=TOKEN)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["worker_id"] == "w1"  # the least loaded, heard from 2 s ago


def test_a_silent_worker_goes_offline_on_the_monotonic_clock_though_the_wall_clock_steps_back(clocks, pool):
    c, ctx, rsps = pool
    answer_plays(rsps, W1, W2)
    ctx.store.add_job("j6", "/srv/nas/film.mkv", {"bitrate_bps": 1})
    ctx.store.update_job("j6", worker_id="w1", state="RUNNING", position_s=42.5)
    c.post("/v1/workers/w1/heartbeats", json=beat(datetime.now(timezone.utc)), headers=TOKEN)
    clocks.wall = -3600.0  # the wall clock steps an hour back; w1 dies, w2 goes on beating
    clocks.mono += 30.0
    c.post("/v1/workers/w2/heartbeats", json=beat(datetime.now(timezone.utc)), headers=TOKEN)
    clocks.mono += 5.0
    # w1 not heard from within seen_within_s (30 s): the play goes to w2 (else w1: the same load, id first)
    answer = c.post("/v1/play", json={"source_path": "/srv/nas/a.mkv"}, headers=TOKEN)
    assert answer.status_code == 201 and answer.get_json()["worker_id"] == "w2"
    clocks.mono += 9.0  # 44 s of silence: not yet offline_after_s (45 s)
    ctx.dispatcher.check()
    assert ctx.store.worker("w1")["status"] == "IDLE"
    clocks.mono += 2.0
    ctx.dispatcher.check()
    w1 = ctx.store.worker("w1")
    assert w1["status"] == "OFFLINE" and "silent for 46s" in w1["reason"]
    assert ctx.store.worker("w2")["status"] != "OFFLINE"
    job = ctx.store.job("j6")
    assert job["worker_id"] == "w2" and job["requeues"] == 1
    assert job["configuration"]["seek_time"] == "00:00:42.500"


def test_after_a_restart_silence_counts_from_the_orchestrators_start(clocks, client):
    c, ctx = client
    c.post("/v1/workers", json=REG, headers=TOKEN)
    clocks.mono += 3600.0  # the orchestrator was down an hour; then a new one starts on the same file
    app = create_app(ctx.settings)
    again = app.extensions["transcode_orchestrator"]
    try:
        assert again.dispatcher.heard("w1") == again.dispatcher.started_at == clocks.mono
        again.dispatcher.check(now=clocks.mono + 44.0)
        assert again.store.worker("w1")["status"] == "IDLE"
        again.dispatcher.check(now=clocks.mono + 46.0)
        assert again.store.worker("w1")["status"] == "OFFLINE"
    finally:
        again.shutdown()


# -- a web page cannot change anything; programs can ------------------------------------------
@pytest.mark.parametrize("path", ["/v1/workers", "/v1/workers/w1/heartbeats", "/v1/play", "/v1/jobs/j1/seek"])
def test_a_call_that_changes_something_takes_json_from_a_program_only(client, path):
    c, ctx = client
    c.post("/v1/workers", json=REG, headers=TOKEN)
    calls = len(ctx.store.jobs()), ctx.store.worker("w1")["last_seen"]
    text = c.post(path, data=json.dumps(REG), content_type="text/plain", headers=TOKEN)
    assert text.status_code == 415 and "application/json" in text.get_json()["error"]
    form = c.post(path, data={"source_path": "/m/x.mkv"}, headers=TOKEN)
    assert form.status_code == 415
    page = {**TOKEN, "Origin": "http://evil.example"}
    assert c.post(path, data=json.dumps(REG), content_type="text/plain", headers=page).status_code == 403
    assert c.post(path, json=REG, headers=page).status_code == 403
    preflight = c.options(path, headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 403
    assert not [h for h in preflight.headers.keys() if h.lower().startswith("access-control-allow")]
    assert (len(ctx.store.jobs()), ctx.store.worker("w1")["last_seen"]) == calls
    assert c.patch("/v1/workers/w1", data="status=OFFLINE", content_type="application/x-www-form-urlencoded",
                   headers=TOKEN).status_code == 415
    for foreign in ("null", "http://localhost:8081", "http://evil.example:80"):  # null: a sandboxed page, a file
        assert c.post("/v1/workers", json=REG, headers={**TOKEN, "Origin": foreign}).status_code == 403, foreign
    # the orchestrator's own origin (listen's: 0.0.0.0:8080, this machine's names) is not foreign
    for own in ("http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"):
        assert c.post("/v1/workers", json=REG, headers={**TOKEN, "Origin": own}).status_code == 201, own


REBOUND = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}


def test_a_page_that_dns_rebinding_pointed_here_changes_nothing(client):
    """The page names its own domain in both Host and Origin: the Host header is no evidence of
    the orchestrator's own origin (F2: a rogue worker was registered with 201)."""
    c, ctx = client
    assert c.post("/v1/workers", json={**REG, "id": "rogue"}, headers={**TOKEN, **REBOUND}).status_code == 403
    assert ctx.store.worker("rogue") is None
    for method, path in (("post", "/v1/play"), ("post", "/v1/jobs/j1/seek"), ("delete", "/v1/jobs/j1"),
                         ("post", "/v1/workers/w1/heartbeats"), ("patch", "/v1/workers/w1")):
        answer = getattr(c, method)(path, json={"source_path": "/m/x.mkv", "seek_time": "00:00:05"},
                                    headers={**TOKEN, **REBOUND})
        assert answer.status_code == 403, (method, path, answer.status_code)
    preflight = c.options("/v1/play", headers={**REBOUND, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403
    assert ctx.store.jobs() == []
    # the same request from a program (no Origin) is a call like any other
    program = {**TOKEN, "Host": "evil.example:8080"}
    assert c.post("/v1/workers", json={**REG, "id": "w2"}, headers=program).status_code == 201


@pytest.mark.parametrize("client", [{"public_url": "https://orch.example.com/"}], indirect=True)
def test_with_public_url_only_its_origin_is_own(client):
    c, _ = client
    assert c.post("/v1/workers", json=REG, headers={**TOKEN, "Origin": "https://orch.example.com"}).status_code == 201
    for other in ("http://orch.example.com", "https://orch.example.com:8443", "http://localhost:8080",
                  "https://evil.example"):
        page = {**TOKEN, "Origin": other, "Host": other.split("//")[1]}
        assert c.post("/v1/workers", json=REG, headers=page).status_code == 403, other


def test_own_origins_come_from_public_url_or_listen(monkeypatch):
    from transcode_worker.orchestrator import config
    from transcode_worker.orchestrator.config import own_origins

    monkeypatch.setattr(config, "machine_names", lambda: frozenset({"localhost", "127.0.0.1", "orch", "10.0.0.5"}))
    own_origins.cache_clear()
    try:
        assert own_origins("https://Orch.LAN/base", "0.0.0.0:8080") == {("https", "orch.lan", 443)}
        assert own_origins("", "10.0.0.5:9000") == {("http", "10.0.0.5", 9000)}
        assert own_origins("", "[::1]:9000") == {("http", "::1", 9000)}
        every = {("http", host, 8080) for host in ("localhost", "127.0.0.1", "orch", "10.0.0.5")}
        assert own_origins("", "0.0.0.0:8080") == every
    finally:
        own_origins.cache_clear()


@pytest.mark.parametrize("client", [{"public_url": "https://orch.example.com/"}], indirect=True)
def test_reads_answer_only_to_the_orchestrators_own_names(client):
    """A page DNS rebinding pointed here sends GETs as its own site, and reads the answers: the
    workers and the jobs, if the Host it names were taken."""
    c, _ = client
    for path in ("/v1/workers", "/v1/jobs", "/v1/jobs/j1"):
        answer = c.get(path, headers={**TOKEN, "Host": "evil.example:8080"})
        assert answer.status_code == 400 and "public_url" in answer.get_json()["error"], (path, answer.data)
    for host in ("orch.example.com", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "10.1.2.3:8080"):
        assert c.get("/v1/workers", headers={**TOKEN, "Host": host}).status_code == 200, host
    # players are sent to /play by any name
    assert c.get(signed(path="/m/x.mkv"), headers={"Host": "evil.example"}).status_code == 503


def test_play_is_open_to_pages(client):
    c, _ = client
    answer = c.get(signed(path="/m/x.mkv"), headers={"Origin": "http://tv.example"})
    assert answer.status_code == 503 and answer.headers["Access-Control-Allow-Origin"] == "*"
    preflight = c.options("/play", headers={"Origin": "http://tv.example", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]


def test_a_head_of_play_says_what_it_leads_to_and_starts_nothing(pool):
    """Shaka asks HEAD first of a URL without .m3u8 (for its type): that must not start a job
    (its GET, next, does)."""
    c, ctx, rsps = pool
    answer = c.head(signed(path="/srv/nas/film.mkv"))
    assert answer.status_code == 200 and answer.mimetype == "application/vnd.apple.mpegurl"
    assert ctx.store.jobs() == [] and not rsps.calls
    assert c.head("/play?path=/srv/nas/film.mkv").status_code == 403  # unsigned: refused all the same


def test_a_worker_that_trickles_its_answer_is_cut_off_at_the_deadline():
    """requests' timeout bounds each read; the dispatcher bounds the whole answer."""
    from transcode_worker.orchestrator.dispatch import Dispatcher

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    done = threading.Event()

    def trickle():  # headers at once, then a byte of the body every 0.1 s for up to 10 s
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                if done.wait(0.1):
                    return
                try:
                    conn.sendall(b" ")
                except OSError:  # the caller hung up
                    return

    thread = threading.Thread(target=trickle, name="trickling-worker")
    thread.start()
    store = SimpleNamespace(update_job=lambda job_id, **values: 1)  # what a whole 202 would record
    dispatcher = Dispatcher(SimpleNamespace(api_token="", worker_timeout_s=0.5), store=store)
    worker = {"id": "slow", "url": f"http://127.0.0.1:{server.getsockname()[1]}"}
    started = time.monotonic()
    try:
        assert dispatcher.command(worker, "j1", "/m/x.mkv", {}) is None  # skipped like an unreachable one
        assert time.monotonic() - started < 3
    finally:
        done.set()
        thread.join(15)
        server.close()


def test_with_a_token_play_takes_only_a_signed_link_and_starts_nothing_else(client):
    """A TV cannot send a bearer token: /play takes a link signed with it instead (path,
    configuration, expiry), minted by a program; anything else is 403 before a worker is asked,
    and says why to the page that asked (CORS)."""
    c, ctx = client
    minted = c.post("/v1/play-links", json={"source_path": "/m/x.mkv", "configuration": {
        "audio_language": "de", "bitrate_bps": 2_000_000, "force_remux": False}, "expires_in_s": 60}, headers=TOKEN)
    assert minted.status_code == 201, minted.get_json()
    url = minted.get_json()["url"]
    assert url.startswith("http://localhost/play?path=%2Fm%2Fx.mkv&audio_language=de&bitrate_bps=2000000&expires=")
    path = url[len("http://localhost"):]
    assert c.get(path).status_code == 503  # signed: on to the pool (which is empty)
    refused = {
        "unsigned": "/play?path=/m/x.mkv",
        "altered": path.replace("x.mkv", "y.mkv"),
        "an argument added": path + "&seek_time=00:10:00",
        "an argument dropped": path.replace("&audio_language=de", ""),
        "the signature twice": path + "&sig=x",
        "signed with another token": "/play?" + links.mint("other", [("path", "/m/x.mkv")], 600),
        "expired": "/play?" + links.mint("t0k", [("path", "/m/x.mkv")], 60, now=time.time() - 120),
    }
    for what, link in refused.items():
        answer = c.get(link, headers={"Origin": "http://tv.example"})
        assert answer.status_code == 403, what
        assert answer.headers["Access-Control-Allow-Origin"] == "*", what
    assert ctx.store.jobs() == []
    # a preflight carries no query: it is answered, the GET it announces is then checked
    preflight = c.options("/play", headers={"Origin": "http://tv.example", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    # minting needs the token, and says what is wrong with a bad request
    assert c.post("/v1/play-links", json={"source_path": "/m/x.mkv"}).status_code == 401
    for body, field in (({"source_path": "/m/x.mkv", "expires_in_s": 0}, "expires_in_s"),
                        ({"source_path": "/m/x.mkv", "configuration": {"sneaky": 1}}, "configuration"),
                        ({"source_path": "/m/x.mkv", "configuration": {"bitrate_bps": "fast"}}, "configuration")):
        answer = c.post("/v1/play-links", json=body, headers=TOKEN)
        assert answer.status_code == 422 and field in answer.get_json()["fields"], body


@pytest.mark.parametrize("client", [{"api_token": ""}], indirect=True)
def test_without_a_token_play_stays_open(client):
    c, _ = client
    assert c.get("/play?path=/m/x.mkv").status_code == 503
    minted = c.post("/v1/play-links", json={"source_path": "/m/x.mkv"})
    assert minted.status_code == 201 and minted.get_json()["url"] == "http://localhost/play?path=%2Fm%2Fx.mkv"


# -- a stream that outlives its worker: claims, the steered playlist, the steering manifest -----
def held(ctx, job_id="j9", worker_id="w2", position_s=42.5):
    ctx.store.add_job(job_id, "/srv/nas/film.mkv", {"bitrate_bps": 1_000_000, "audio_language": "de"})
    ctx.store.update_job(job_id, worker_id=worker_id, state="RUNNING", position_s=position_s,
                         playlist_url=f"{W2}/{job_id}.m3u8")


def claim(c, job_id="j9", worker_id="w1", headers=TOKEN):
    return c.post(f"/v1/jobs/{job_id}/claim", json={"worker_id": worker_id}, headers=headers)


def test_a_claim_while_the_holder_answers_sends_the_player_there_and_moves_nothing(pool):
    c, ctx, rsps = pool
    held(ctx)
    rsps.get(W2 + "/healthz", json={"status": "ok"})
    answer = claim(c)
    assert answer.status_code == 409 and answer.get_json()["holder_url"] == W2
    assert ctx.store.job("j9")["worker_id"] == "w2" and ctx.store.worker("w2")["status"] != "OFFLINE"
    assert len(asked(rsps, "/healthz")) == 1  # "alive" is asked each time, never kept
    claim(c)
    assert len(asked(rsps, "/healthz")) == 2


def test_a_claim_when_the_holder_is_gone_gives_the_job_with_its_choices_and_takes_the_holder_off(pool):
    c, ctx, rsps = pool
    held(ctx)
    rsps.get(W2 + "/healthz", body=requests.ConnectionError("refused"))
    answer = claim(c)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["command"] == {
        "job_id": "j9", "source_path": "/srv/nas/film.mkv",
        "configuration": {"bitrate_bps": 1_000_000, "audio_language": "de", "seek_time": "00:00:42.500"}}
    job = ctx.store.job("j9")
    assert job["worker_id"] == "w1" and job["playlist_url"] == f"{W1}/j9.m3u8" and job["requeues"] == 1
    deadline = time.monotonic() + 5
    while ctx.store.worker("w2")["status"] != "OFFLINE" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ctx.store.worker("w2")["status"] == "OFFLINE"  # its silence need not last offline_after_s
    # the claimer asking again (another request of the same player) is given the job again
    assert claim(c).status_code == 200 and ctx.store.job("j9")["requeues"] == 1


@pytest.mark.parametrize("case, status", [("unknown job", 404), ("unknown worker", 404), ("no token", 401)])
def test_a_claim_that_cannot_be_is_refused_and_changes_nothing(pool, case, status):
    c, ctx, rsps = pool
    held(ctx)
    answer = claim(c, job_id="nope" if case == "unknown job" else "j9",
                   worker_id="w7" if case == "unknown worker" else "w1",
                   headers={} if case == "no token" else TOKEN)
    assert answer.status_code == status
    assert ctx.store.job("j9")["worker_id"] == "w2" and not asked(rsps, "/healthz")


def test_a_job_its_claimer_could_not_start_goes_to_another_worker(pool):
    c, ctx, rsps = pool
    held(ctx, worker_id="w1")
    rsps.get(W2 + "/v1/media", json=H264)
    rsps.add_callback(responses.POST, W2 + "/v1/jobs", callback=job_answer(W2))
    answer = c.post("/v1/jobs/j9/release", json={"worker_id": "w1", "reason": "at capacity"}, headers=TOKEN)
    assert answer.status_code == 204
    assert ctx.store.job("j9")["worker_id"] == "w2"
    # a release by a worker that does not hold the job changes nothing
    assert c.post("/v1/jobs/j9/release", json={"worker_id": "w1"}, headers=TOKEN).status_code == 204
    assert ctx.store.job("j9")["worker_id"] == "w2"


def test_the_steered_playlist_is_made_once_and_the_manifest_lists_the_holder_first_the_pool_last(pool):
    c, ctx, rsps = pool
    held(ctx)
    rsps.get(W2 + "/healthz", json={"status": "ok"})
    rsps.get(W2 + "/j9.m3u8", body='#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nj9.media.m3u8\n')
    first = c.get("/streams/j9.m3u8")
    assert first.status_code == 200 and first.headers["Access-Control-Allow-Origin"] == "*"
    assert first.mimetype == "application/vnd.apple.mpegurl"
    text = first.get_data(as_text=True)
    assert "http://localhost/streams/j9/j9.media.m3u8" in text and 'PATHWAY-ID="pool"' in text
    assert c.get("/streams/j9.m3u8").get_data() == first.get_data() and len(asked(rsps, "/j9.m3u8")) == 1
    steering = c.get("/streams/j9.steering.json?_HLS_pathway=pool&_HLS_throughput=1")
    assert steering.status_code == 200 and steering.headers["Access-Control-Allow-Origin"] == "*"
    body = steering.get_json()
    assert body["PATHWAY-PRIORITY"] == ["w2", "w1", "pool"]
    assert body["PATHWAY-CLONES"][0]["URI-REPLACEMENT"]["PER-VARIANT-URIS"] == {"j9.media.m3u8": W2 + "/j9.media.m3u8"}
    # deleted: gone with the job
    rsps.delete(W2 + "/v1/jobs/j9", json={"deleted": True})
    c.delete("/v1/jobs/j9", headers=TOKEN)
    assert ctx.store.stream_text("j9", "pool") is None and c.get("/streams/j9.m3u8").status_code == 404
    assert c.get("/streams/j9.steering.json").status_code == 404


def test_through_the_pool_segments_go_to_the_holder_and_past_a_dead_one_to_its_successor(pool):
    c, ctx, rsps = pool
    held(ctx)
    rsps.get(W2 + "/healthz", json={"status": "ok"})
    rsps.get(W2 + "/j9.media.m3u8", body="#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4,\nj9_0.ts\n#EXT-X-ENDLIST\n")
    playlist = c.get("/streams/j9/j9.media.m3u8")
    assert playlist.status_code == 200 and "http://localhost/streams/j9/j9_0.ts" in playlist.get_data(as_text=True)
    sent = c.get("/streams/j9/j9_0.ts")
    assert sent.status_code == 302 and sent.headers["Location"] == W2 + "/j9_0.ts"
    assert sent.headers["Access-Control-Allow-Origin"] == "*"
    for bad in ("other_0.ts", "j9_0.ts%2F..", "j9..%2Fx"):
        assert c.get(f"/streams/j9/{bad}").status_code == 404
    # the holder dies silently: the next segment's redirect finds it dead and goes to the successor
    rsps.replace(responses.GET, W2 + "/healthz", body=requests.ConnectionError("refused"))
    rsps.get(W1 + "/v1/media", json=H264)
    rsps.get(W1 + "/healthz", json={"status": "ok"})
    rsps.add_callback(responses.POST, W1 + "/v1/jobs", callback=job_answer(W1))
    time.sleep(0.6)  # past the time an answer to /healthz is believed
    moved = c.get("/streams/j9/j9_1.ts")
    assert moved.status_code == 302 and moved.headers["Location"] == W1 + "/j9_1.ts"
    assert ctx.store.job("j9")["worker_id"] == "w1" and ctx.store.worker("w2")["status"] == "OFFLINE"


def test_a_stream_whose_worker_answers_badly_is_a_clear_error(pool):
    c, ctx, rsps = pool
    held(ctx)
    rsps.get(W2 + "/healthz", json={"status": "ok"})
    rsps.get(W2 + "/j9.m3u8", status=503, json={"error": "not yet"})
    assert c.get("/streams/j9.m3u8").status_code == 503
    rsps.replace(responses.GET, W2 + "/j9.m3u8", body="#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n")
    answer = c.get("/streams/j9.m3u8")
    assert answer.status_code == 502 and "could not be read" in answer.get_json()["error"]
    assert ctx.store.stream_text("j9", "pool") is None


def test_a_holder_slow_to_answer_but_still_beating_is_alive_and_keeps_its_jobs(pool):
    c, ctx, rsps = pool
    held(ctx)
    rsps.get(W2 + "/healthz", body=requests.ReadTimeout("busy encoding"))
    answer = claim(c)
    assert answer.status_code == 409 and answer.get_json()["holder_url"] == W2
    assert ctx.store.job("j9")["worker_id"] == "w2" and ctx.store.worker("w2")["status"] != "OFFLINE"


@pytest.mark.parametrize("state", ["STOPPED", "FAILED"])
def test_an_ended_job_is_not_claimed_back_to_life(pool, state):
    c, ctx, rsps = pool
    held(ctx)
    ctx.store.update_job("j9", state=state)
    rsps.get(W2 + "/healthz", body=requests.ConnectionError("refused"))
    answer = claim(c)
    assert answer.status_code == 404 and "ended" in answer.get_json()["error"]
    assert ctx.store.job("j9")["worker_id"] == "w2"


def test_a_worker_that_is_offline_cannot_claim(pool):
    c, ctx, rsps = pool
    held(ctx)
    rsps.get(W2 + "/healthz", body=requests.ConnectionError("refused"))
    ctx.store.set_offline("w1", "test")
    assert claim(c).status_code == 409 and ctx.store.job("j9")["worker_id"] == "w2"


def test_a_job_a_worker_runs_that_is_not_its_own_is_deleted_there(pool):
    c, ctx, rsps = pool
    held(ctx, worker_id="w1")  # moved to w1 while w2 was thought gone; w2 beats again, still running it
    rsps.delete(W2 + "/v1/jobs/j9", json={"deleted": True})
    now = datetime.now(timezone.utc)
    assert c.post("/v1/workers/w2/heartbeats", json=beat(now, [context("j9", 10.0)]), headers=TOKEN).status_code == 204
    deadline = time.monotonic() + 5
    while not [call for call in rsps.calls if call.request.method == "DELETE"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [call.request.url for call in rsps.calls if call.request.method == "DELETE"] == [W2 + "/v1/jobs/j9"]
    assert ctx.store.job("j9")["worker_id"] == "w1"


def test_ended_jobs_are_forgotten_a_day_on_with_their_streams(client):
    c, ctx = client
    ctx.store.add_job("old", "/m/x.mkv", {"bitrate_bps": 1})
    ctx.store.update_job("old", state="COMPLETED")
    ctx.store.keep_stream_text("old", "pool", "#EXTM3U\n")
    ctx.store.add_job("live", "/m/x.mkv", {"bitrate_bps": 1})
    ctx.store.update_job("live", state="RUNNING")
    ctx.dispatcher.forget_ended(86400, now=time.time() + 86401)
    assert ctx.store.job("old") is None and ctx.store.stream_text("old", "pool") is None
    assert ctx.store.job("live") is not None


def test_a_moved_job_starts_where_its_viewer_is_not_where_its_run_was(pool):
    c, ctx, rsps = pool
    held(ctx, position_s=0.0)
    now = datetime.now(timezone.utc)
    beat_with_viewer = beat(now, [{**context("j9", 95.0), "watched_s": 60.0}])
    assert c.post("/v1/workers/w2/heartbeats", json=beat_with_viewer, headers=TOKEN).status_code == 204
    assert ctx.store.job("j9")["watched_s"] == 60.0
    rsps.get(W2 + "/healthz", body=requests.ConnectionError("refused"))
    assert claim(c).get_json()["command"]["configuration"]["seek_time"] == "00:01:00.000"
