"""The real service under gunicorn talking to a real (stand-in) orchestrator on loopback."""
import signal
import statistics
import time

import psutil
import pytest
import requests

import media_files as mf
from orchestrator_standin import OrchestratorStandIn
from transcode_worker.schemas import DeathNoteSchema, HeartbeatSchema, RegistrationSchema
from worker_process import free_port, process_gone, wait_for

TOKEN = "link-token"


@pytest.fixture
def orchestrator():
    standin = OrchestratorStandIn(free_port(), token=TOKEN).start()
    yield standin
    standin.stop()


@pytest.fixture
def linked(make_worker, orchestrator):
    def make(**settings):
        return make_worker(orchestrator_url=orchestrator.url, api_token=TOKEN, heartbeat_interval_s=1.0,
                           **settings)
    return make


def auth():
    return {"Authorization": f"Bearer {TOKEN}"}


def test_registers_then_beats_at_the_interval_with_progress(linked, orchestrator, media_root):
    w = linked()
    wait_for(lambda: orchestrator.registrations(), 10, what="the registration")
    (reg,) = orchestrator.registrations()
    assert RegistrationSchema().load(reg.body)["url"] == f"http://127.0.0.1:{w.port}"
    assert reg.headers["Authorization"] == f"Bearer {TOKEN}"

    body = {"job_id": "hb1", "source_path": str(media_root / mf.LONG), "configuration": {"bitrate_bps": 400_000}}
    assert w.post_job(body, headers=auth()).status_code == 202
    wait_for(lambda: len([h for h in orchestrator.heartbeats() if h.body["active_jobs"]]) >= 4, 20,
             what="four heartbeats with the job")
    w.delete("hb1")
    beats = orchestrator.heartbeats()
    for beat in beats:
        HeartbeatSchema().load(beat.body)
    gaps = [b.at - a.at for a, b in zip(beats, beats[1:])]
    assert 0.8 < statistics.median(gaps) < 1.5
    progress = [b.body["job_context"]["progress"] for b in beats if b.body["job_context"]]
    progress = [p for p in progress if p is not None]
    assert len(progress) >= 2 and progress[-1] > progress[0]
    assert {b.body["status"] for b in beats} <= {"IDLE", "BUSY", "STRESSED"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_sends_the_death_note_first_then_stops_ffmpeg(linked, orchestrator, media_root, sig):
    w = linked(stop_grace_s=3.0)
    wait_for(lambda: orchestrator.registrations(), 10, what="the registration")
    pid = w.post_job({"job_id": "dn1", "source_path": str(media_root / mf.LONG)}, headers=auth()).json()["pid"]
    w.wait_state("dn1", {"RUNNING"})
    seen = {}
    orchestrator.on_call = lambda call: call.method == "PATCH" and seen.setdefault("ffmpeg_gone", process_gone(pid))
    w.proc.send_signal(sig)
    w.proc.wait(timeout=15)
    (note,) = orchestrator.death_notes()
    assert DeathNoteSchema().load(note.body) == {"status": "OFFLINE", "reason": "SHUTDOWN", "message": None}
    assert seen["ffmpeg_gone"] is False  # the note comes first: the job's players move at once
    assert not psutil.pid_exists(pid) or process_gone(pid)
    assert not (w.segment_root / "dn1").exists()


def test_orchestrator_down_then_up_gets_the_spool_in_order_then_live(linked, orchestrator):
    w = linked()
    wait_for(lambda: orchestrator.heartbeats(), 10, what="a first heartbeat")
    orchestrator.stop()
    down_at = len(orchestrator.calls)
    wait_for(lambda: len(list((w.workdir / "spool" / "outbox").glob("*.json"))) >= 3, 15,
             what="three spooled heartbeats")
    orchestrator.start()
    wait_for(lambda: any(not h.body.get("replayed") for h in orchestrator.heartbeats()[down_at:]), 20,
             what="live heartbeats again")
    wait_for(lambda: not list((w.workdir / "spool" / "outbox").glob("*.json")), 20, what="the spool delivered")
    after = [h.body for h in orchestrator.heartbeats() if orchestrator.calls.index(h) >= down_at]
    replayed = [b["recorded_at"] for b in after if b.get("replayed")]
    live = [b["recorded_at"] for b in after if not b.get("replayed")]
    assert len(replayed) >= 3 and live
    assert replayed == sorted(replayed) and live == sorted(live)  # each in the order it was recorded
    assert max(replayed) < max(live)


def test_live_heartbeats_keep_their_interval_while_a_spool_is_replayed(linked, orchestrator):
    """Back from an outage, to an orchestrator that answers in 0.4 s: the spool goes on between
    live heartbeats, which keep their interval (before, the whole spool went first: 30 s of it
    meant 17 s without a live beat, and past 45 s an orchestrator marks the worker OFFLINE)."""
    w = linked()
    wait_for(lambda: orchestrator.heartbeats(), 10, what="a first heartbeat")
    orchestrator.stop()
    down_at = len(orchestrator.calls)
    wait_for(lambda: len(list((w.workdir / "spool" / "outbox").glob("*.json"))) >= 8, 20,
             what="eight spooled heartbeats")
    arrivals = []

    def slow(call):
        arrivals.append((time.monotonic(), bool(call.body and call.body.get("replayed"))))
        time.sleep(0.4)

    orchestrator.on_call = slow
    orchestrator.start()
    wait_for(lambda: not list((w.workdir / "spool" / "outbox").glob("*.json")), 30, what="the spool delivered")
    replay_end = max(t for t, replayed in arrivals if replayed)
    live = [t for t, replayed in arrivals if not replayed and t <= replay_end]
    assert len(live) >= 2, arrivals  # live beats came while the replay went on
    # 1 s +-5 %, and at most one slow replayed answer in the way
    assert all(b - a < 1.05 + 0.4 + 0.3 for a, b in zip(live, live[1:])), live
    assert len(orchestrator.heartbeats()) > down_at


def test_a_forgetful_orchestrator_gets_a_new_registration(linked, orchestrator):
    linked()
    wait_for(lambda: orchestrator.heartbeats(), 10, what="a first heartbeat")
    orchestrator.forget("test-worker")
    wait_for(lambda: len(orchestrator.registrations()) == 2, 15, what="a second registration")
    n = len(orchestrator.calls)
    wait_for(lambda: any(c.path.endswith("/heartbeats") for c in orchestrator.calls[n:]), 10,
             what="heartbeats after the new registration")


def test_a_killed_worker_reports_its_lost_jobs_when_it_comes_back(linked, orchestrator, media_root):
    w = linked()
    wait_for(lambda: orchestrator.registrations(), 10, what="the registration")
    pid = w.post_job({"job_id": "lost1", "source_path": str(media_root / mf.LONG)}, headers=auth()).json()["pid"]
    w.wait_state("lost1", {"RUNNING"})
    psutil.Process(pid).parent().kill()  # the gunicorn worker process: no death note possible
    wait_for(lambda: len(orchestrator.registrations()) == 2, 30, what="the restarted worker's registration")
    again = orchestrator.registrations()[-1].body
    assert again["lost_jobs"] == ["lost1"] and again["unclean_restart"] is True
    assert orchestrator.death_notes() == []
    assert not (w.segment_root / "lost1").exists()


def test_error_status_refuses_jobs_with_the_reason(linked, orchestrator, media_root, tmp_path):
    extra = tmp_path / "nas"
    extra.mkdir()
    w = linked(media_roots=[str(media_root), str(extra)])
    wait_for(lambda: orchestrator.heartbeats(), 10, what="a first heartbeat")
    extra.rmdir()  # the NAS share went away
    wait_for(lambda: orchestrator.heartbeats()[-1].body["status"] == "ERROR", 15, what="an ERROR heartbeat")
    reason = orchestrator.heartbeats()[-1].body["reason"]
    assert str(extra) in reason
    body = {"job_id": "err1", "source_path": str(media_root / mf.H264)}
    refused = w.post_job(body, headers=auth())
    assert refused.status_code == 503 and str(extra) in refused.json()["error"]
    assert "Retry-After" in refused.headers
    assert requests.get(w.url + "/healthz", timeout=5).json()["problems"] == [reason]
    extra.mkdir()
    wait_for(lambda: orchestrator.heartbeats()[-1].body["status"] == "IDLE", 15, what="IDLE again")
    assert w.post_job(body, headers=auth()).status_code == 202
    w.delete("err1")


def test_a_worker_that_cannot_start_says_why_in_a_death_note(linked, orchestrator, tmp_path):
    first = linked()
    wait_for(lambda: orchestrator.registrations(), 10, what="the registration")
    second = first.__class__(tmp_path / "second", first.settings["media_roots"][0],
                             **{**first.settings, "listen": f"127.0.0.1:{free_port()}"})
    with pytest.raises(AssertionError, match="exited with 2"):
        second.start(timeout=20)
    line = second.log().strip().splitlines()[-1]
    assert line.startswith("transcode-worker: configuration error: segment_root:")
    assert "in use by another transcode-worker" in line
    (note,) = orchestrator.death_notes()
    assert note.body["reason"] == "ERROR" and "in use by another transcode-worker" in note.body["message"]
