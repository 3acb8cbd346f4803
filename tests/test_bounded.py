"""bounded.run with real child processes: a child that SIGKILL cannot end at once (frozen in
uninterruptible sleep, as a read from a hung share holds ffprobe) does not hold its caller."""
import subprocess
import threading
import time

import pytest

import kernel_faults
from transcode_worker import bounded
from worker_process import process_gone, wait_for


def test_a_child_that_answers_in_time_gives_its_output():
    proc = bounded.run(["sh", "-c", "cat; echo err >&2; exit 3"], 10, input=b"in")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, b"in", b"err\n")


def test_a_frozen_child_is_given_up_within_its_bound_and_reaped_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(bounded, "KILL_WAIT_S", 1.0)
    pidfile = tmp_path / "pid"
    outcome = {}

    def call():
        started = time.monotonic()
        try:
            bounded.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], 2)
        except subprocess.TimeoutExpired:
            outcome["raised_after"] = time.monotonic() - started

    caller = threading.Thread(target=call)
    caller.start()
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, what="the child's pid"))
    with kernel_faults.frozen(pid):
        caller.join(10)  # subprocess.run waited here until the thaw
        assert not caller.is_alive() and outcome["raised_after"] == pytest.approx(3.0, abs=1.0), outcome
        assert not process_gone(pid) and kernel_faults.state_of(pid) == "D"
    wait_for(lambda: process_gone(pid), 10, what="the thawed child reaped")
