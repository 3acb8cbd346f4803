"""The orchestrator's worker-facing endpoints in process (Flask test client, real SQLite)."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from transcode_worker.orchestrator.app import create_app
from transcode_worker.schemas import seek_time

TOKEN = {"Authorization": "Bearer t0k"}
REG = {"id": "w1", "static_specs": {"cpu_model": "x", "total_threads": 4, "hardware_acceleration": []},
       "url": "http://127.0.0.1:9", "max_concurrent_jobs": 2, "version": "0.1.0", "encoders": ["libx264"],
       "lost_jobs": [], "unclean_restart": False}


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
def client(tmp_path):
    settings = SimpleNamespace(database=str(tmp_path / "o.db"), api_token="t0k", seen_within_s=30.0,
                               offline_after_s=45.0, check_interval_s=60.0, worker_timeout_s=1.0,
                               default_bitrate_bps=4_000_000, prefer_same_subnet=True)
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
    assert c.get("/play?job_id=j2").status_code == 503


def test_play_without_workers_says_why(client):
    c, _ = client
    answer = c.get("/play?path=/m/x.mkv")
    assert answer.status_code == 503 and "no worker has registered" in answer.get_json()["error"]
    assert answer.headers["Retry-After"]
    assert c.get("/play").status_code == 400
    assert c.get("/play?path=/m/x.mkv&seek_time=soon").status_code == 422
    for bad in ("audio_stream=first", "audio_stream=-1", "audio_language=klingon", "subtitle_stream=x"):
        answer = c.get(f"/play?path=/m/x.mkv&{bad}")
        assert answer.status_code == 422 and bad.split("=")[0] in str(answer.get_json()["fields"]), bad


def test_seek_time_format():
    assert seek_time(0) == "00:00:00.000"
    assert seek_time(3725.5) == "01:02:05.500"


@pytest.mark.parametrize("method, path", [
    ("get", "/play?job_id=nope"), ("get", "/v1/jobs/nope"), ("post", "/v1/jobs/nope/seek"),
    ("delete", "/v1/jobs/nope"),
])
def test_an_unknown_job_is_404_everywhere(client, method, path):
    c, _ = client
    response = getattr(c, method)(path, json={"seek_time": "00:01:00"} if method == "post" else None,
                                  headers=TOKEN)
    assert response.status_code == 404 and response.get_json()["error"] == "unknown job"
