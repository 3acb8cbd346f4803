"""Run state and crash recovery: only our FFmpeg is ended, only HLS folders under segment_root go."""
import os
import subprocess
import sys
from types import SimpleNamespace

import psutil
import pytest

from transcode_worker.runstate import FolderInUse, RunState, lock_folder
from transcode_worker.spool import Spool
from worker_process import process_gone, wait_for


@pytest.fixture
def dirs(tmp_path):
    spool, segments = tmp_path / "spool", tmp_path / "segments"
    spool.mkdir()
    segments.mkdir()
    return SimpleNamespace(spool=spool, segments=segments)


def sleeper():
    """A stand-in for an FFmpeg left running: its own process group, like the supervisor's."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=0)


def fake_job(job_id, folder, pid):
    return SimpleNamespace(job_id=job_id, folder=folder, pid=pid)


def test_a_crash_is_recovered_at_the_next_start(dirs):
    folder = dirs.segments / "job1"
    leftover = sleeper()
    try:
        run = RunState(str(dirs.spool), str(dirs.segments))
        assert run.recover() == [] and not run.unclean_restart
        folder.mkdir()
        (folder / "job1_0.ts").write_bytes(b"ts")
        run.job_changed(fake_job("job1", folder, leftover.pid), active=True)
        # ... SIGKILL: close() never runs
        after = RunState(str(dirs.spool), str(dirs.segments))
        assert after.unclean_restart
        assert after.recover() == ["job1"]
        wait_for(lambda: leftover.poll() is not None, 5, what="the leftover FFmpeg to be ended")
        assert not folder.exists()
    finally:
        leftover.kill()
        leftover.wait()


@pytest.mark.parametrize("standalone", [False, True])
def test_lost_jobs_are_reported_until_taken_and_standalone_once(dirs, standalone):
    run = RunState(str(dirs.spool), str(dirs.segments))
    run.recover()
    (dirs.segments / "job1").mkdir()
    run.job_changed(fake_job("job1", dirs.segments / "job1", None), active=True)
    # ... killed: the next start finds the job lost
    assert RunState(str(dirs.spool), str(dirs.segments)).recover(standalone=standalone) == ["job1"]
    # ... killed again before any orchestrator took the report: the one after says it again,
    # unless no orchestrator will ever take it (the log said it once)
    again = RunState(str(dirs.spool), str(dirs.segments)).recover(standalone=standalone)
    assert again == ([] if standalone else ["job1"])


def test_a_reused_pid_is_never_touched(dirs):
    bystander = sleeper()
    try:
        run = RunState(str(dirs.spool), str(dirs.segments))
        run.job_changed(fake_job("job1", dirs.segments / "job1", bystander.pid), active=True)
        run._jobs["job1"]["ffmpeg_started"] -= 100  # as if our FFmpeg had that pid before a reboot
        run._write()
        assert RunState(str(dirs.spool), str(dirs.segments)).recover() == ["job1"]
        assert psutil.Process(bystander.pid).status() != psutil.STATUS_ZOMBIE
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_only_hls_folders_are_removed(dirs):
    hls = dirs.segments / "abc"
    hls.mkdir()
    for name in ("abc.m3u8", "abc.media.m3u8.tmp", "abc_0.ts", "abc_1.ts.tmp", "abc.burn.ass"):
        (hls / name).write_text("x")
    (hls / "abc.fonts").symlink_to(dirs.spool)  # burned subtitles' fonts: a link, never followed
    fmp4 = dirs.segments / "hevc_1"  # HEVC: fMP4 segments after their init segment
    fmp4.mkdir()
    for name in ("hevc_1.media.m3u8", "hevc_1_init_7.mp4", "hevc_1_7.m4s", "hevc_1_8.m4s.tmp"):
        (fmp4 / name).write_text("x")
    mine = dirs.segments / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_text("x")
    (dirs.segments / "notes.txt").write_text("x")
    films = dirs.segments / "films"  # an mp4 that is not an init segment is not ours
    films.mkdir()
    (films / "films_init.mp4").write_text("x")
    aside = dirs.segments / ".removing-j9-123"  # a deleted job's folder, set aside when it crashed
    aside.mkdir()
    (aside / "j9_0.ts").write_text("x")
    (dirs.segments / ".removing-note").write_text("a file of that name is not ours")
    run = RunState(str(dirs.spool), str(dirs.segments))
    assert run.recover() == ["abc", "hevc_1"]
    assert sorted(os.listdir(dirs.segments)) == [".removing-note", "films", "notes.txt", "photos"]
    assert dirs.spool.is_dir()  # what the link pointed at is untouched


def test_a_clean_end_loses_nothing(dirs):
    run = RunState(str(dirs.spool), str(dirs.segments))
    run.job_changed(fake_job("job1", dirs.segments / "job1", None), active=True)
    run.close()
    again = RunState(str(dirs.spool), str(dirs.segments))
    assert not again.unclean_restart and again.recover() == []


def test_a_second_worker_on_the_same_folder_is_refused(dirs):
    held = lock_folder(str(dirs.segments))
    code = ("import sys; from transcode_worker.runstate import lock_folder, FolderInUse\n"
            "try: lock_folder(sys.argv[1])\nexcept FolderInUse as e: print(e); sys.exit(3)")
    other = subprocess.run([sys.executable, "-c", code, str(dirs.segments)], capture_output=True, text=True)
    assert other.returncode == 3 and f"pid {os.getpid()}" in other.stdout
    held.close()
    lock_folder(str(dirs.segments)).close()


TAKE_WITHIN_10_S = ("import sys, time; from transcode_worker.runstate import lock_folder, FolderInUse\n"
                    "t = time.monotonic()\n"
                    "try: lock_folder(sys.argv[1], sibling_wait_s=10)\n"
                    "except FolderInUse: print('refused after', round(time.monotonic() - t)); sys.exit(3)\n"
                    "print('taken')")


def test_the_process_a_sighup_replaces_is_waited_for_and_no_other(dirs):
    held = lock_folder(str(dirs.segments))  # held by the parent: not a sibling, refused at once
    other = subprocess.run([sys.executable, "-c", TAKE_WITHIN_10_S, str(dirs.segments)], capture_output=True,
                           text=True, timeout=30)
    assert other.returncode == 3 and other.stdout.strip() == "refused after 0"
    held.close()
    code = ("import sys, time; from transcode_worker.runstate import lock_folder\n"
            "h = lock_folder(sys.argv[1]); print('locked', flush=True); time.sleep(1)")
    old = subprocess.Popen([sys.executable, "-c", code, str(dirs.segments)], stdout=subprocess.PIPE, text=True)
    try:
        assert old.stdout.readline().strip() == "locked"
        new = subprocess.run([sys.executable, "-c", TAKE_WITHIN_10_S, str(dirs.segments)], capture_output=True,
                             text=True, timeout=30)
        assert new.stdout.strip() == "taken" and old.poll() is not None  # once its sibling had exited
    finally:
        old.kill()
        old.wait()


def test_spool_survives_a_restart_in_order(tmp_path):
    spool = Spool(str(tmp_path), max_records=100)
    for n in range(3):
        spool.append({"n": n})
    (tmp_path / "000000000099.json.tmp").write_text("{half")  # a write cut short by a crash
    again = Spool(str(tmp_path), max_records=100)
    seen = []
    while (item := again.oldest()) is not None:
        seen.append(item[1]["n"])
        again.remove(item[0])
    assert seen == [0, 1, 2]
    again.append({"n": 3})
    assert sorted(os.listdir(tmp_path)) == ["000000000003.json"]


def test_lock_is_released_when_the_holder_dies(dirs):
    code = ("import sys, os, time; from transcode_worker.runstate import lock_folder\n"
            "h = lock_folder(sys.argv[1]); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(dirs.spool)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderInUse):
            lock_folder(str(dirs.spool))
        holder.kill()
        wait_for(lambda: process_gone(holder.pid), 5, what="the holder to die")
    finally:
        holder.kill()
        holder.wait()
    lock_folder(str(dirs.spool)).close()
