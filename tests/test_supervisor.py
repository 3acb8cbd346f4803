"""JobSupervisor around a real child process (a fake FFmpeg), without the HTTP service."""
import sys
import time
from pathlib import Path

import psutil
import pytest

import kernel_faults
from specs import hls_output, job_spec, media_info
from transcode_worker.janitor import Limits, janitor_verdict
from transcode_worker.run import Run
from transcode_worker.states import JobState
from transcode_worker.supervisor import JobSupervisor
from worker_process import process_gone

FAKE = str(Path(__file__).parent / "fake_ffmpeg.py")


@pytest.fixture
def run_fake(tmp_path):
    started = []

    def run(mode):
        job = Run(job_spec(folder=tmp_path, media=media_info(duration=8.0)), hls_output("j1", 2.0))
        job.supervisor = JobSupervisor(job, [sys.executable, FAKE, mode])
        job.supervisor.start()
        assert job.supervisor.wait_spawned()
        started.append(job)
        return job

    yield run
    for job in started:
        job.supervisor.stop(0.5)
        assert not job.supervisor.is_alive()
        assert job.pid is None or process_gone(job.pid)


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sigterm_ignored_then_sigkill_and_reaped(run_fake):
    job = run_fake("stubborn")
    wait_until(lambda: job.position_s == 1.0)
    assert job.speed == "1.0x"
    started = time.monotonic()
    job.supervisor.stop(0.5)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 5
    assert job.state is JobState.STOPPED and job.exit_code == -9
    assert not psutil.pid_exists(job.pid)


def test_kill_now_skips_the_grace(run_fake):
    job = run_fake("stubborn")
    started = time.monotonic()
    job.supervisor.stop(30, kill_now=True)
    assert time.monotonic() - started < 5 and job.state is JobState.STOPPED


def test_failure_keeps_the_stderr_tail(run_fake):
    job = run_fake("fail")
    wait_until(lambda: job.state is JobState.FAILED)
    assert job.error == "FFmpeg exited with status 1" and job.exit_code == 1
    assert job.stderr_tail[-1].endswith("Invalid data found when processing input")
    assert len(job.stderr_tail) == 40  # bounded: the first lines are dropped


def test_exit_without_a_segment_is_a_failure(run_fake):
    job = run_fake("nothing")
    wait_until(lambda: job.state is JobState.FAILED)
    assert "without writing a segment" in job.error


def test_completion_reads_progress_and_the_segment_list(run_fake):
    job = run_fake("playlist")
    wait_until(lambda: job.state is JobState.COMPLETED)
    assert job.last_segment_id == 1 and job.progress == 100.0 and job.speed == "2.5x"
    assert job.ended_at is not None
    # what the run listed is in the job's folder, its staging folder gone
    assert (job.folder / "j1_0.ts").exists() and (job.folder / "j1_1.ts").exists()
    assert not (job.folder / "j1.run0").exists() and 0 in job.made and 1 in job.made


def test_missing_executable_fails_the_job(tmp_path):
    job = Run(job_spec(folder=tmp_path), hls_output("j1", 2.0))
    job.supervisor = JobSupervisor(job, [str(tmp_path / "no-ffmpeg")])
    job.supervisor.start()
    job.supervisor.join(5)
    assert job.state is JobState.FAILED
    # directly: "cannot start FFmpeg: ..."; through setpriv: exit 127 with setpriv's reason in the tail
    assert "no-ffmpeg" in job.error + " ".join(job.stderr_tail)


def test_a_fake_ffmpeg_that_hangs_is_found_stalled_and_fails_with_the_reason(run_fake):
    job = run_fake("stubborn")  # prints progress forever, always at the same output time
    wait_until(lambda: job.position_s == 1.0)
    limits = Limits(stall_s=0.5, idle_s=0, finished_s=0)
    verdict = wait_until_value(lambda: janitor_verdict(job, time.monotonic(), limits))
    assert verdict[0] == "stall"
    assert job.supervisor.kill_stalled(verdict[1])
    wait_until(lambda: job.state is JobState.FAILED)
    assert "no progress" in job.error and job.exit_code == -9
    assert not job.supervisor.kill_stalled("again")  # an ended job is left alone


def wait_until_value(produce, timeout=10):
    deadline = time.monotonic() + timeout
    while (value := produce()) is None:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_an_ffmpeg_sigkill_does_not_end_fails_the_job_and_stop_returns(run_fake, monkeypatch):
    """FFmpeg in uninterruptible sleep (frozen by the cgroup freezer, as a hung NFS read holds it):
    stop() returns False within the grace and REAP_WAIT_S instead of raising (before:
    TimeoutExpired, a 500), the job is FAILED with why; once it can die it is reaped."""
    monkeypatch.setattr("transcode_worker.supervisor.REAP_WAIT_S", 1.0)
    job = run_fake("stubborn")
    wait_until(lambda: job.position_s == 1.0)
    with kernel_faults.frozen(job.pid):
        wait_until(lambda: kernel_faults.state_of(job.pid) == "D")
        started = time.monotonic()
        assert job.supervisor.stop(0.5) is False
        assert time.monotonic() - started < 3
        assert job.state is JobState.FAILED and "did not end 1s after SIGKILL" in job.error, job.error
        assert not job.supervisor.ended() and psutil.pid_exists(job.pid)
    wait_until(job.supervisor.ended)
    job.supervisor.join(5)
    assert not job.supervisor.is_alive() and job.state is JobState.FAILED and job.exit_code == -9
