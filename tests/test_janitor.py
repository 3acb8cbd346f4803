"""The janitor's rules as a pure function over a job and a clock."""
import time

import pytest

from specs import hls_output, job_spec
from transcode_worker.janitor import Limits, janitor_verdict
from transcode_worker.run import Run
from transcode_worker.states import JobState
from transcode_worker.supervisor import JobSupervisor

LIMITS = Limits(stall_s=60, idle_s=300, finished_s=120)


def job_in(state, t0=1000.0):
    job = Run(job_spec(), hls_output("j1", 4.0))
    job.last_progress_at = job.last_request_at = t0
    path = {JobState.STARTING: [], JobState.RUNNING: [JobState.RUNNING],
            JobState.COMPLETED: [JobState.RUNNING, JobState.COMPLETED], JobState.FAILED: [JobState.FAILED],
            JobState.STOPPED: [JobState.STOPPING, JobState.STOPPED]}[state]
    for step in path:
        job.change_state(step)
    if path:
        job.ended_mono = t0 if state in (JobState.COMPLETED, JobState.FAILED, JobState.STOPPED) else None
    return job


@pytest.mark.parametrize("state", [JobState.STARTING, JobState.RUNNING])
def test_a_stall_is_no_progress_for_the_limit(state):
    job = job_in(state)
    job.last_request_at = 1059.0  # watched, so only the stall rule can apply
    assert janitor_verdict(job, 1059.9, LIMITS) is None
    action, reason = janitor_verdict(job, 1060.0, LIMITS)
    assert action == "stall" and "no progress for 60s" in reason


def test_a_paused_job_is_not_stalled():
    job = job_in(JobState.RUNNING)
    job.paused = True
    job.last_request_at = 1100.0
    assert janitor_verdict(job, 1100.0, LIMITS) is None


def test_an_unwatched_running_job_expires():
    job = job_in(JobState.RUNNING)
    job.last_progress_at = 1299.0  # progressing, so only the idle rule can apply
    assert janitor_verdict(job, 1299.9, LIMITS) is None
    action, reason = janitor_verdict(job, 1300.0, LIMITS)
    assert action == "expire" and "no player asked" in reason


@pytest.mark.parametrize("state", [JobState.COMPLETED, JobState.FAILED, JobState.STOPPED])
def test_a_finished_job_expires_after_its_own_idle_time(state):
    job = job_in(state)
    assert janitor_verdict(job, 1119.0, LIMITS) is None
    job.last_request_at = 1100.0  # a player still reading the finished stream
    assert janitor_verdict(job, 1219.0, LIMITS) is None
    action, reason = janitor_verdict(job, 1220.0, LIMITS)
    assert action == "expire" and reason.startswith(state.value.lower())


def test_zero_turns_a_rule_off():
    job = job_in(JobState.RUNNING)
    assert janitor_verdict(job, 10 ** 6, Limits(0, 0, 0)) is None
    assert Limits(0, 0, 0).shortest == 60.0 and LIMITS.shortest == 60


THROTTLE = Limits(stall_s=60, idle_s=300, finished_s=120, lead_s=20)


def running_with_segments(last, furthest=None):
    job = job_in(JobState.RUNNING)
    job.last_segment_id, job.furthest_requested = last, furthest
    return job


def test_throttling_pauses_far_ahead_and_resumes_near():
    segment_s = 4.0  # job_in's HlsOutput
    assert running_with_segments(5, furthest=None).lead_s() == 6 * segment_s  # nobody asked yet: from the start
    assert janitor_verdict(running_with_segments(5, furthest=0), 1000.0, THROTTLE) is None  # 20 s: at the lead
    action, reason = janitor_verdict(running_with_segments(6, furthest=0), 1000.0, THROTTLE)
    assert action == "pause" and "24s ahead" in reason
    paused = running_with_segments(6, furthest=1)
    paused.paused = True
    assert janitor_verdict(paused, 1000.0, THROTTLE) is None  # 20 s: still above half the lead
    paused.furthest_requested = 4
    assert janitor_verdict(paused, 1000.0, THROTTLE)[0] == "resume"  # 8 s: a player came near
    assert janitor_verdict(running_with_segments(50), 1000.0, LIMITS) is None  # lead_s 0: never


def test_a_resumed_job_is_measured_afresh_by_the_speed_guard():
    job = job_in(JobState.RUNNING)
    job.samples.extend([(0.0, 10.0), (0.5, 10.5), (30.5, 11.0)])  # paused for 30 s: nothing written
    job.paused = True
    JobSupervisor(job, ["ffmpeg"]).resume()
    assert not job.paused and list(job.samples) == []  # the pause does not count as slowness


def test_after_a_seek_back_the_viewer_is_where_they_asked_last_and_a_trimmed_segment_is_remade():
    """A viewer far ahead seeks back: trimming (job_disk_limit_mb) keeps what is around where they
    are now, not around the furthest segment they ever asked for; and a segment the run passed
    that is no longer made (trimmed) is one it will never make again: a run starts there."""
    job = job_in(JobState.RUNNING)
    job.record_request(120)
    job.record_request(20)
    assert job.watched_position() == job.grid.start(20)
    assert job.furthest_requested == 120  # (throttling still measures from the furthest)
    job.record_segment(130)
    job.position_s = job.grid.end(130)
    job.rate = 2.0
    job.last_progress_at = time.monotonic()  # it is moving
    job.made.add(119, 1000)
    assert job.eta_s(119) == 0.0  # made: served
    assert job.eta_s(20) is None  # passed long ago and not made: never, from this run
    assert job.eta_s(129) == 0.0  # just passed: its file may not be listed yet
