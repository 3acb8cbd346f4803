import os
import sys
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers: specs, media_files, worker_process

from media_files import make_library  # noqa: E402
from transcode_worker.health import WRITE_CHECK_PREFIX  # noqa: E402
from transcode_worker.runstate import LOCK_FILE  # noqa: E402
from orchestrator_process import OrchestratorProcess  # noqa: E402
from worker_process import WorkerProcess, process_gone, wait_for  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if "worker" in getattr(item, "fixturenames", ()) or "make_worker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def media_root(tmp_path_factory):
    """Every kind of source the tests play, made once per session with FFmpeg."""
    return make_library(tmp_path_factory.mktemp("library") / "media")


@pytest.fixture(scope="session", autouse=True)
def no_stray_processes(tmp_path_factory):
    """Fail the session if any process that names our temporary folders outlives it."""
    base = str(tmp_path_factory.getbasetemp())
    yield
    strays = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid != os.getpid() and any(base in arg for arg in (proc.info["cmdline"] or [])):
            strays.append(proc)
            try:  # its children too (nginx's workers name no folder), before they lose their parent
                family = [*proc.children(recursive=True), proc]
            except psutil.NoSuchProcess:
                family = []
            for member in family:
                try:
                    member.kill()
                except psutil.NoSuchProcess:
                    pass
    assert not strays, f"processes left behind: {[p.info['cmdline'] for p in strays]}"


@pytest.fixture(scope="module")
def _shared_worker(media_root, tmp_path_factory):
    worker = WorkerProcess(tmp_path_factory.mktemp("worker"), media_root).start()
    yield worker
    worker.stop()
    assert worker.proc.returncode is not None


def _fail_on_leftovers(worker):
    """What a test left behind: jobs, FFmpeg processes, folders. Cleans up, then reports."""
    problems = []
    for job in worker.jobs():
        problems.append(f"job {job['job_id']} ({job['state']}) left running")
        worker.delete(job["job_id"])
    # a job's FFmpeg is gone when DELETE answers; a file's subtitle extraction (shared by its
    # jobs, not theirs) ends by itself, soon
    try:
        wait_for(lambda: not worker.ffmpeg_pids(), 20, what="no FFmpeg")
    except AssertionError:
        problems.append(f"FFmpeg processes left: {worker.ffmpeg_pids()}")
    # the health check's write probe may be there for an instant, while a check runs
    left = sorted(p.name for p in worker.segment_root.iterdir()
                  if p.name != LOCK_FILE and not p.name.startswith(WRITE_CHECK_PREFIX)) \
        if worker.segment_root.exists() else []
    if left:
        problems.append(f"folders left under segment_root: {left}")
    return problems


@pytest.fixture
def worker(_shared_worker):
    """The shared service; the test fails if it leaves a job, an FFmpeg or a folder behind."""
    assert not _fail_on_leftovers(_shared_worker), "a previous test left things behind"
    yield _shared_worker
    problems = _fail_on_leftovers(_shared_worker)
    assert not problems, "; ".join(problems)


@pytest.fixture
def make_worker(media_root, tmp_path):
    """A dedicated service with its own settings; stopped, and checked for leftovers, after the test."""
    started = []

    def make(**settings):
        started.append(WorkerProcess(tmp_path / f"worker{len(started)}", media_root, **settings).start())
        return started[-1]

    yield make
    problems = []
    for w in started:
        if w.proc.poll() is None:
            problems += _fail_on_leftovers(w)
        pids = [p.pid for p in w.descendants()]
        w.stop()
        alive = [pid for pid in pids if not process_gone(pid)]
        if alive:
            problems.append(f"processes of the worker outlived it: {alive}")
    assert not problems, "; ".join(problems)


TOKEN = "cluster-token"


@pytest.fixture
def cluster(make_worker, tmp_path):
    def start(offline_after_s=3.0, token=TOKEN, **orchestrator_settings):
        orch = OrchestratorProcess(tmp_path / "orchestrator", api_token=token, seen_within_s=5.0,
                                   offline_after_s=offline_after_s, check_interval_s=0.5,
                                   **{"segment_duration_s": 2.0, **orchestrator_settings}).start()
        started.append(orch)
        workers = [make_worker(worker_id=wid, orchestrator_url=orch.url, api_token=token, heartbeat_interval_s=1.0)
                   for wid in ("w1", "w2")]
        wait_for(lambda: {w["status"] for w in orch.workers().values()} <= {"IDLE", "BUSY", "STRESSED"}
                 and len(orch.workers()) == 2, 20, what="both workers in the pool")
        return orch, {w.settings["worker_id"]: w for w in workers}
    started = []
    yield start
    for orch in started:
        for job in orch.get("/v1/jobs").json()["jobs"]:
            orch.delete(f"/v1/jobs/{job['job_id']}")
        orch.stop()
