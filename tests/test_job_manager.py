"""JobManager's bookkeeping around real child processes (a fake FFmpeg), without the HTTP service:
what races between commands, the janitor and stops leave behind."""
import dataclasses
import shutil
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import media_files as mf
from specs import job_spec, media_info
from transcode_worker import media
from transcode_worker.api.hls import _watched
from transcode_worker.audio import LEAD_S, RUNS_PER_JOB
from transcode_worker.config import load_settings
from transcode_worker.jobs import JobManager, Refused
from transcode_worker.media import AudioStream
from transcode_worker.states import JobState
from transcode_worker.subtitles import SubtitleCache
from worker_process import process_gone, wait_for

FAKE = str(Path(__file__).parent / "fake_ffmpeg.py")


def settings_in(tmp_path, **more):
    """The worker's settings with its folders under tmp_path (media, segments, spool), no speed guard."""
    return load_settings(environ={
        "TRANSCODE_WORKER_MEDIA_ROOTS": str(tmp_path / "media"), "TRANSCODE_WORKER_SEGMENT_ROOT": str(tmp_path / "segments"),
        "TRANSCODE_WORKER_SPOOL_DIR": str(tmp_path / "spool"), "TRANSCODE_WORKER_SPEED_GUARD_S": "0",
        **{f"TRANSCODE_WORKER_{key}": value for key, value in more.items()}})


@pytest.fixture
def manager(tmp_path):
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "film.mkv").write_bytes(b"\0" * 1000)  # opened, never read by the fake
    settings = settings_in(tmp_path, MAX_CONCURRENT_JOBS="1", STOP_GRACE_S="2")
    (tmp_path / "segments").mkdir()
    stubborn = lambda *args, **kw: [sys.executable, FAKE, "stubborn"]  # noqa: E731
    manager = JobManager(settings, ffmpeg_argv=stubborn, audio_argv=stubborn)
    yield manager
    pids = [job.pid for job in manager.jobs()]
    manager.shutdown()
    assert all(process_gone(pid) for pid in pids if pid)


def spec(tmp_path, job_id, **changes):
    return job_spec(**{"job_id": job_id, "source": tmp_path / "media" / "film.mkv",
                       "source_path": str(tmp_path / "media" / "film.mkv"), "folder": tmp_path / "segments" / job_id,
                       "media": media_info(duration=60.0), **changes})


def test_the_janitor_never_deletes_the_run_a_command_just_put_in_place(manager, tmp_path):
    """The janitor judged run `old` idle; before it deletes, a command replaced the job with another
    stream. Before, delete(job_id) then took the new job down with it."""
    old, _ = manager.submit(spec(tmp_path, "j1"))
    new, _ = manager.submit(dataclasses.replace(spec(tmp_path, "j1"), bitrate_bps=2_000_000))
    assert new is not old
    assert manager.delete("j1", reason="idle for 60s", run=old) is False
    assert manager.get("j1") is new and new.pid is not None and not process_gone(new.pid)


def test_a_job_being_deleted_holds_its_slot_until_its_ffmpeg_has_ended(manager, tmp_path):
    """One slot; a job whose FFmpeg ignores SIGTERM is deleted (its 2 s grace runs). Before, the
    deleted job no longer counted: a new job started beside the old FFmpeg, past capacity."""
    first, _ = manager.submit(spec(tmp_path, "first"))
    wait_for(lambda: first.speed, 10, what="the fake FFmpeg ignoring SIGTERM")  # (it says so once it does)
    deleting = threading.Thread(target=manager.delete, args=("first",))
    deleting.start()
    time.sleep(0.5)
    with pytest.raises(Refused) as refused:
        manager.submit(spec(tmp_path, "second"))
    assert refused.value.status == 503 and "at capacity" in str(refused.value)
    deleting.join(10)
    assert process_gone(first.pid)
    second, _ = manager.submit(spec(tmp_path, "second"))
    assert second.pid is not None


def test_the_subtitles_a_job_reads_stay_in_the_cache_while_it_is_there(media_root, tmp_path):
    """A cache of one byte: a second film's read-out evicts the least recently used entry. Before,
    that could be the subtitles a burning-in job draws from: its next run (a jump, a seek) could
    not start, and its WebVTT went. Now an entry a job holds is never evicted nor pruned."""
    (tmp_path / "media").mkdir()
    films = []
    for name in ("a.mkv", "b.mkv"):
        shutil.copy(media_root / mf.SUBTITLED, tmp_path / "media" / name)
        films.append((tmp_path / "media" / name, media.run_ffprobe("ffprobe", str(tmp_path / "media" / name))))
    (tmp_path / "segments").mkdir()
    cache = SubtitleCache("ffmpeg", tmp_path / "subtitles", 1, media_roots=[tmp_path / "media"])
    settings = settings_in(tmp_path)
    manager = JobManager(settings, subtitles=cache,
                         ffmpeg_argv=lambda spec, output, **kw: [sys.executable, FAKE, "stubborn"])
    try:
        (source, info), (other, other_info) = films
        job, _ = manager.submit(job_spec(job_id="j1", source=source, source_path=str(source), media=info,
                                         folder=tmp_path / "segments" / "j1"))
        assert job.subtitles.ready.wait(30) and job.subtitles.error is None
        assert cache.get(other, other_info).ready.wait(30)
        cache.prune()
        assert job.subtitles.folder.exists() and cache.extractions_run == 2
        manager.delete("j1")
        cache.evict()  # no job holds it now: the least recently used goes
        assert not job.subtitles.folder.exists()
    finally:
        manager.shutdown()


def test_a_listener_that_fails_stops_no_job_change(manager, tmp_path):
    """A listener of job changes fails (the run state's file on a full spool_dir; a bug): before,
    its exception escaped into the thread that follows FFmpeg, which died (the job RUNNING
    forever), and into DELETE (a 500). Now it is logged, and the job changes all the same."""
    def broken(job, old, new):
        raise OSError(28, "No space left on device")

    manager.add_listener(broken)
    job, _ = manager.submit(spec(tmp_path, "j1"))
    wait_for(lambda: job.speed, 10, what="FFmpeg followed")
    assert manager.delete("j1") is True
    assert job.state.value == "STOPPED" and process_gone(job.pid) and not job.supervisor.is_alive()


def test_two_players_far_apart_do_not_replace_each_others_run_every_second(manager, tmp_path, monkeypatch):
    """Two players waiting on one job far apart: each asks again every second. Before, each ask
    replaced the other's run at once, and neither ever got a segment. A run started for a player
    still waiting now lives MIN_RUN_S before another segment's waiter may replace it; a run
    nobody waits on any more (the player jumped again) is replaced at once, as before."""
    monkeypatch.setattr("transcode_worker.jobs.MIN_RUN_S", 1.0)
    manager.submit(spec(tmp_path, "j1"))
    with manager.waiting("j1", 8):  # player A waits for segment 8
        manager.want("j1", 8)
        jump = manager.get("j1")
        assert jump.first_number == 8
        with manager.waiting("j1", 2):  # player B, far from A, at once
            manager.want("j1", 2)
            assert manager.get("j1") is jump  # A's run makes its segment first
            time.sleep(1.1)
            manager.want("j1", 2)
            assert manager.get("j1").first_number == 2
    with manager.waiting("j1", 6):  # a player that jumps again, nobody waiting on the young run
        manager.want("j1", 6)
        assert manager.get("j1").first_number == 6


def test_a_job_deleted_between_two_runs_is_reported_ended(tmp_path):
    """A run made its span and ended (its job goes on in a next run, about to start); the job is
    deleted in that moment. Before, its end was never reported: the run's end had been taken for
    a step of the job, and the next run never came. Now listeners hear that the job ended."""
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "film.mkv").write_bytes(b"\0" * 1000)
    (tmp_path / "segments").mkdir()
    settings = settings_in(tmp_path)
    manager = JobManager(settings, ffmpeg_argv=lambda spec, output, **kw: [sys.executable, FAKE, "playlist",
                                                                          output.staging])
    manager._go_on = lambda job, number: None  # the next run has not started yet
    heard = []
    manager.add_listener(lambda job, old, new: heard.append((new, job.superseded)))
    try:
        job, _ = manager.submit(spec(tmp_path, "j1", seek_time="00:00:20"))  # a sprint: one segment's span
        assert job.output.sprint
        wait_for(lambda: job.state.value == "COMPLETED", 10, what="the run's span made")
        assert job.superseded and (JobState.COMPLETED, True) in heard  # a step of the job, not its end
        assert manager.delete("j1") is True
        assert heard[-1] == (JobState.COMPLETED, False)  # the job's end, heard once deleted
    finally:
        manager.shutdown()


def test_a_client_asking_for_every_track_of_a_film_starts_a_few_audio_runs(manager, tmp_path):
    """A film with many audio tracks (a hostile file has hundreds) and a client that asks for a
    segment of each: each rendition's run is started, and those asked for longest ago are stopped,
    so a job never has more than audio.RUNS_PER_JOB audio FFmpeg at once."""
    tracks = [AudioStream(stream=i, index=i + 1, codec="aac", channels=2, default=i == 0) for i in range(8)]
    job, _ = manager.submit(spec(tmp_path, "many", media=media_info(duration=60.0, audio=tracks)))
    runs = []
    for stream in range(8):
        track = manager.audio_track(job, f"audio{stream}")
        track.record_request(10)
        manager.want_audio("many", track.name, 10)
        runs.append(track.run)
        running = [t.name for t in job.audio.values() if t.run is not None]
        assert len(running) <= RUNS_PER_JOB, running
    assert [t.name for t in job.audio.values() if t.run is not None] == ["audio5", "audio6", "audio7"]
    for run in runs[:5]:  # stopped, and gone
        wait_for(lambda r=run: process_gone(r.pid), 10, what=f"audio run {run.output.rendition} gone")
    assert not any(process_gone(run.pid) for run in runs[5:])


def test_two_players_far_apart_on_one_rendition_do_not_replace_each_others_run(manager, tmp_path):
    """A run of an audio rendition started for a player still waiting keeps run.MIN_RUN_S before
    another segment's request may replace it (each request forked an FFmpeg that killed the one
    before: neither player got a segment)."""
    job, _ = manager.submit(spec(tmp_path, "apart"))
    track = manager.audio_track(job, "audio0")
    far = len(job.grid) - 1
    with manager.waiting("apart", 5, "audio0"):  # (the default rendition's run began at 0)
        manager.want_audio("apart", "audio0", 5)
        first = track.run
        assert first.first_number == 5
        manager.want_audio("apart", "audio0", far)
        assert track.run is first  # the player at 5 waits on it
    manager.want_audio("apart", "audio0", far)  # nobody waits at 5 any more
    assert track.run is not first and track.run.first_number == far


def ahead_after(delay_s):
    """A fake FFmpeg that makes its run's first segment after delay_s, then runs on ahead."""
    return lambda spec, output, *args, **kw: [sys.executable, FAKE, "ahead", output.staging, output.job_id,
                                              str(output.start_number), str(delay_s)]


def stopped(run, stopped=True):
    """True once run's FFmpeg is stopped (SIGSTOP: state T), or running again (stopped=False);
    fails past 5 s. A signal takes a moment to be delivered."""
    is_stopped = lambda: psutil.Process(run.pid).status() == psutil.STATUS_STOPPED  # noqa: E731
    wait_for(lambda: is_stopped() == stopped, 5, what=f"FFmpeg pid {run.pid} {'' if stopped else 'not '}stopped")
    return True


def test_audio_runs_wait_while_the_video_run_makes_the_picture_its_player_waits_for(tmp_path):
    """At a start and at a jump, the video's first segment is what the player waits for: the
    audio rendition's run, once it has made its own first segment, is paused until then (it
    went on making sound ahead of the player on the cores the picture needed). A player that
    waits on the audio run keeps it going."""
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "film.mkv").write_bytes(b"\0" * 1000)
    (tmp_path / "segments").mkdir()
    settings = settings_in(tmp_path, THROTTLE_LEAD_S="60")
    manager = JobManager(settings, ffmpeg_argv=ahead_after(1.5), audio_argv=ahead_after(0))
    try:
        job, _ = manager.submit(spec(tmp_path, "held"))
        track = job.audio["audio0"]  # the DEFAULT rendition's run starts with the video's
        wait_for(lambda: 0 in track.made, 10, what="the sound's first segment")
        assert job.state is JobState.STARTING and track.run.held and stopped(track.run)
        _watched(job, 0, settings, "audio0")  # a player takes the sound's made segment: still held
        assert track.run.held and stopped(track.run)
        wait_for(lambda: job.state is JobState.RUNNING, 10, what="the picture's first segment")
        assert not track.run.held and stopped(track.run, False)

        audio = track.run
        manager.want("held", 10)  # a jump: the video's run at 10 makes its first segment
        jump = manager.get("held")
        assert jump.first_number == 10 and track.run is audio and audio.held and stopped(audio)
        wait_for(lambda: jump.state is JobState.RUNNING, 10, what="the jump's first segment")
        assert not audio.held and stopped(audio, False)

        with manager.waiting("held", 1, "audio0"):  # a player waits on the sound's run
            manager.want("held", 3)  # (a jump back)
            assert manager.get("held").first_number == 3 and not audio.held and stopped(audio, False)
    finally:
        manager.shutdown()


def test_a_rendition_run_far_behind_a_jump_is_replaced_by_one_there(tmp_path):
    """An audio run with more than audio.LEAD_S of film to make before the segment a player
    jumped to is replaced by a run there, though at 70 times real time it would get there in
    time (it would spend a core on sound nobody hears, beside the jump's video run); one that is
    nearer makes it."""
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "film.mkv").write_bytes(b"\0" * 1000)
    (tmp_path / "segments").mkdir()
    at_5s = lambda *args, **kw: [sys.executable, FAKE, "at", "5", "70"]  # noqa: E731
    manager = JobManager(settings_in(tmp_path), ffmpeg_argv=at_5s, audio_argv=at_5s)
    try:
        job, _ = manager.submit(spec(tmp_path, "behind", media=media_info(duration=600.0)))
        track = manager.audio_track(job, "audio0")
        first = track.run
        wait_for(lambda: first.rate == 70 and first.made_to_s() == 5, 10, what="the sound's run at 5 s, 70x")
        near, far = job.grid.segment_at(20.0), job.grid.segment_at(40.0)
        assert job.grid.start(far) - 5 > LEAD_S >= job.grid.start(near) - 5
        assert not track.left_behind(near) and track.left_behind(far)
        manager.want_audio("behind", "audio0", near)
        assert track.run is first
        manager.want_audio("behind", "audio0", far)
        assert track.run is not first and track.run.first_number == far
    finally:
        manager.shutdown()
