"""The orchestrator link with `responses` on the orchestrator's side: payload shapes, the spool,
re-registration, the death note. The loop's steps are driven one by one (no sleeping)."""
import dataclasses
import json
import time
from types import SimpleNamespace

import pytest
import requests
import responses

from specs import hls_output, job_spec
from transcode_worker import speed_guard
from transcode_worker.capabilities import Capabilities
from transcode_worker.heartbeat import Heartbeat
from transcode_worker.run import Run
from transcode_worker.progress import Progress
from transcode_worker.runstate import RunState
from transcode_worker.schemas import DeathNoteSchema, HeartbeatSchema, RegistrationSchema
from transcode_worker.spool import Spool
from transcode_worker.states import JobState

ORCH = "http://orch.test:8080"
REGISTER = ORCH + "/v1/workers"
BEATS = ORCH + "/v1/workers/w1/heartbeats"
WORKER = ORCH + "/v1/workers/w1"
CALM = {"cpu_usage": 12.5, "gpu_usage": None, "ram_free_bytes": 8 << 30, "temp_c": None, "gpu_temp_c": None}


class FakeTelemetry:
    def __init__(self):
        self.values = dict(CALM)

    def collect(self):
        return dict(self.values)


class FakeManager:
    def __init__(self):
        self.listeners, self.list = [], []
        self.stuck_ffmpeg = []

    def stuck(self):
        return list(self.stuck_ffmpeg)

    def add_listener(self, callback):
        self.listeners.append(callback)

    def jobs(self):
        return list(self.list)

    def add(self, job_id, created_at):
        job = Run(job_spec(job_id=job_id), hls_output(job_id, 4.0),
                  on_transition=lambda j, o, n: [cb(j, o, n) for cb in self.listeners])
        job.created_at = created_at
        self.list.append(job)
        return job


@pytest.fixture
def link(tmp_path):
    settings = SimpleNamespace(
        worker_id="w1", orchestrator_url=ORCH, api_token="tok", advertise_url="http://10.0.0.5:8081",
        max_concurrent_jobs=3, heartbeat_interval_s=10.0, stressed_cpu_percent=90.0,
        stressed_ram_free_bytes=512 << 20, stressed_temp_c=90.0)
    (tmp_path / "segments").mkdir()
    manager = FakeManager()
    health = SimpleNamespace(problems=())
    runstate = RunState(str(tmp_path), str(tmp_path / "segments"))
    spool = Spool(str(tmp_path / "outbox"), max_records=5)
    hb = Heartbeat(settings, Capabilities("5.1", ("libx264",)), manager, health, runstate, spool,
                   telemetry=FakeTelemetry())
    hb.manager_fake, hb.health_fake = manager, health
    hb._next_beat = time.monotonic() + 3600  # the tests call _beat and _deliver themselves
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        hb.rsps = rsps
        yield hb


def bodies(rsps, url=None, method=None):
    """What the orchestrator received (calls that failed on the network never arrived)."""
    return [json.loads(c.request.body) for c in rsps.calls
            if isinstance(c.response, requests.Response)
            and (url is None or c.request.url == url) and (method is None or c.request.method == method)]


def connect(link):
    link.rsps.add(responses.POST, REGISTER, status=201)
    link.rsps.add(responses.POST, BEATS, status=204)
    link._deliver()
    assert link.registered and link.link_up


def test_registration_payload_and_token(link):
    connect(link)
    (payload,) = bodies(link.rsps, REGISTER)
    assert RegistrationSchema().load(payload)
    assert payload["id"] == "w1" and payload["url"] == "http://10.0.0.5:8081"
    assert payload["max_concurrent_jobs"] == 3 and payload["static_specs"]["hardware_acceleration"] == []
    assert payload["lost_jobs"] == [] and payload["unclean_restart"] is False
    assert link.rsps.calls[0].request.headers["Authorization"] == "Bearer tok"


def test_heartbeat_in_each_status(link):
    connect(link)
    link._beat()  # IDLE
    older = link.manager_fake.add("old", 1.0)
    link.manager_fake.add("new", 2.0)
    older.record_progress(Progress(out_time_s=30.0, speed="1.8x", frame=750, ended=False))
    link._beat()  # BUSY: both jobs, the newer one as job_context
    link.telemetry.values["cpu_usage"] = 97.0
    link._beat()  # STRESSED
    link.health_fake.problems = ("media root /nas is missing or not a folder",)
    link._beat()  # ERROR wins
    beats = bodies(link.rsps, BEATS)
    for beat in beats:
        assert HeartbeatSchema().load(beat)
    assert [b["status"] for b in beats] == ["IDLE", "BUSY", "STRESSED", "ERROR"]
    assert beats[0]["job_context"] is None and beats[0]["jobs"] == [] and beats[0]["reason"] is None
    busy = beats[1]
    assert busy["active_jobs"] == 2 and busy["job_context"]["active_job_id"] == "new"
    old = next(j for j in busy["jobs"] if j["active_job_id"] == "old")
    assert old["progress"] == 5.0 and old["speed"] == "1.8x" and old["position_s"] == 30.0
    assert "CPU at 97%" in beats[2]["reason"]
    assert beats[3]["reason"] == "media root /nas is missing or not a folder"
    assert all(c.request.headers["Authorization"] == "Bearer tok" for c in link.rsps.calls)


def test_an_ffmpeg_that_sigkill_did_not_end_stresses_the_worker(link):
    connect(link)
    link.manager_fake.stuck_ffmpeg = ["FFmpeg pid 42 of job a has not ended 9s after SIGKILL"]
    link._beat()
    beat = bodies(link.rsps, BEATS)[-1]
    assert beat["status"] == "STRESSED" and "pid 42 of job a has not ended" in beat["reason"], beat


def test_a_job_that_ended_is_reported_once(link):
    connect(link)
    job = link.manager_fake.add("done", 1.0)
    job.record_segment(0)
    job.change_state(JobState.COMPLETED, progress=100.0)
    link._beat()
    link._beat()
    first, second = bodies(link.rsps, BEATS)
    assert first["active_jobs"] == 0 and first["job_context"] is None
    assert [(j["active_job_id"], j["state"], j["progress"]) for j in first["jobs"]] == [("done", "COMPLETED", 100.0)]
    assert second["jobs"] == []


def test_the_speed_guard_shows_in_the_job_context_and_a_job_that_cannot_keep_up_stresses(link):
    connect(link)
    job = link.manager_fake.add("heavy", 1.0)
    job.steps = speed_guard.steps("libx264", "veryfast", 720, 3_000_000)
    job.guard = speed_guard.Decision(12.0, 0.7, 0, None, False)
    link._beat()  # behind, not yet stepped: BUSY
    job.spec = dataclasses.replace(job.spec, step=job.steps[-1])
    job.guard = speed_guard.Decision(15.0, 0.6, job.steps[-1].number, "0.60x real time for 15s at its lightest step", True)
    link._beat()
    busy, stressed = bodies(link.rsps, BEATS)
    assert HeartbeatSchema().load(busy) and HeartbeatSchema().load(stressed)
    assert busy["status"] == "BUSY" and busy["job_context"]["speed_guard"]["step"] == 0
    assert busy["job_context"]["speed_guard"]["speed"] == 0.7
    assert stressed["status"] == "STRESSED" and "job heavy cannot keep up: 0.60x" in stressed["reason"]
    context = stressed["job_context"]["speed_guard"]
    assert context["step"] == 4 and context["height"] == 360 and context["cannot_keep_up"].startswith("0.60x")
    assert context["steps"] == 5 and context["preset"] == "ultrafast" and context["light_analysis"] is False


def test_a_run_the_speed_guard_replaced_is_not_reported_as_ended(link):
    connect(link)
    job = link.manager_fake.add("stepped", 1.0)
    job.record_segment(0)
    job.superseded = True  # stopped for its next run, at a lighter step
    job.change_state(JobState.STOPPING)
    job.change_state(JobState.STOPPED)
    link._beat()
    (beat,) = bodies(link.rsps, BEATS)
    assert beat["jobs"] == []  # (the job goes on in its next run, which the next beats report)


def test_orchestrator_down_spools_then_replays_in_order_before_live(link):
    connect(link)
    link.rsps.replace(responses.POST, BEATS, body=requests.ConnectionError("refused"))
    for cpu in (1.0, 2.0, 3.0):
        link.telemetry.values["cpu_usage"] = cpu
        link._beat()
    assert not link.link_up and len(link.spool) == 3
    link._deliver()  # still down: nothing lost, backoff grows
    assert len(link.spool) == 3 and link._backoff_s > 1.0

    link.rsps.replace(responses.POST, BEATS, status=204)
    link._deliver()
    link.telemetry.values["cpu_usage"] = 4.0
    link._beat()
    delivered = [b for b in bodies(link.rsps, BEATS)]
    assert [b["telemetry"]["cpu_usage"] for b in delivered] == [1.0, 2.0, 3.0, 4.0]
    assert [b.get("replayed", False) for b in delivered] == [True, True, True, False]
    stamps = [b["recorded_at"] for b in delivered]
    assert stamps == sorted(stamps)  # each with the time it was recorded, not the time it was sent
    assert len(link.spool) == 0 and link.link_up


def test_a_live_heartbeat_due_during_a_replay_goes_first(link):
    connect(link)
    link.rsps.replace(responses.POST, BEATS, body=requests.ConnectionError("refused"))
    for cpu in (1.0, 2.0, 3.0):
        link.telemetry.values["cpu_usage"] = cpu
        link._beat()
    link.rsps.replace(responses.POST, BEATS, status=204)
    link._next_beat = 0.0  # a live beat is due as the orchestrator comes back
    link._deliver()  # one record tells the link is up; then the live beat's turn
    link.telemetry.values["cpu_usage"] = 4.0
    link._beat()
    link._next_beat = time.monotonic() + 60
    link._deliver()
    delivered = bodies(link.rsps, BEATS)
    assert [(b["telemetry"]["cpu_usage"], b.get("replayed", False)) for b in delivered] == [
        (1.0, True), (4.0, False), (2.0, True), (3.0, True)]
    assert len(link.spool) == 0


def test_spool_is_bounded_and_counts_what_it_dropped(link):
    for cpu in range(8):
        link.telemetry.values["cpu_usage"] = float(cpu)
        link._beat()  # never registered: straight to the spool
    assert len(link.spool) == 5 and link.spool.dropped == 3
    link._beat()
    connect(link)
    replayed = bodies(link.rsps, BEATS)
    assert [b["telemetry"]["cpu_usage"] for b in replayed][:5] == [4.0, 5.0, 6.0, 7.0, 7.0]
    assert replayed[-1]["spool_dropped"] == 3  # as counted when the ninth beat was recorded (it then pushed out one more)
    assert link.spool.dropped == 0


def test_a_404_heartbeat_makes_the_worker_register_again(link):
    connect(link)
    link.rsps.replace(responses.POST, BEATS, status=404)
    link._beat()
    assert not link.registered and len(link.spool) == 1
    link.rsps.replace(responses.POST, BEATS, status=204)
    link._deliver()
    assert len(bodies(link.rsps, REGISTER)) == 2 and len(link.spool) == 0


def test_lost_jobs_are_reported_until_accepted(link, tmp_path):
    link.runstate.lost_jobs, link.runstate.unclean_restart = ["a1", "b2"], True
    link.rsps.add(responses.POST, REGISTER, status=503)
    link._deliver()
    assert not link.registered
    assert RunState(str(tmp_path), str(tmp_path / "segments")).lost_jobs == []  # not yet written...
    link.runstate._write()
    assert RunState(str(tmp_path), str(tmp_path / "segments")).lost_jobs == ["a1", "b2"]  # ...kept on disk
    link.rsps.replace(responses.POST, REGISTER, status=201)
    link._deliver()
    payload = bodies(link.rsps, REGISTER)[-1]
    assert payload["lost_jobs"] == ["a1", "b2"] and payload["unclean_restart"] is True
    assert RunState(str(tmp_path), str(tmp_path / "segments")).lost_jobs == []


@pytest.mark.parametrize("reason, message", [("SHUTDOWN", None), ("ERROR", "segment_root vanished")])
def test_death_note(link, reason, message):
    link.rsps.add(responses.PATCH, WORKER, status=204)
    assert link.death_note(reason, message)
    (note,) = bodies(link.rsps, WORKER, "PATCH")
    assert DeathNoteSchema().load(note) == {"status": "OFFLINE", "reason": reason, "message": message}


def test_death_note_to_a_dead_orchestrator_gives_up(link):
    link.rsps.add(responses.PATCH, WORKER, body=requests.ConnectTimeout("down"))
    assert link.death_note("SHUTDOWN") is False
