"""A file in the library that is not a film: a text playlist or list named like one, which FFmpeg
would follow to files outside the media roots. Refused by GET /v1/media and by every kind of job,
with a reason, and nothing outside the roots is opened. And a refused command (422, 503) starts no
FFmpeg of any kind: no subtitle read-out, no tone-map LUT, not even a probe when at capacity."""
import concurrent.futures
import os
import signal
import shutil
import subprocess
import threading
import time

import pytest
import requests

import media_files as mf
from specs import job_spec
from transcode_worker import media
from transcode_worker.config import load_settings
from transcode_worker.jobs import JobManager, Refused
from transcode_worker.subtitles import SubtitleCache
from worker_process import ProcessWatch, WorkerProcess, wait_for


class OpenWatch:
    """Tells whether anybody opens a FIFO for reading: a writer that opens it without blocking
    succeeds only while a reader has it open (else ENXIO). A reader that got it sees it end at once."""

    def __init__(self, fifo):
        self.fifo = fifo
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="open-watch", daemon=True)

    def _watch(self):
        while not self._stop.wait(0.005):
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            self.opened += 1
            os.close(fd)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def disguised(tmp_path_factory, media_root):
    """A media root holding one good film and three disguised files that name a file outside it:
    an HLS playlist by a relative path, one by an absolute file: URL, and an ffconcat list by a
    plain name (FFmpeg's concat 'safe' mode allows it) of a link that leads out of the root."""
    base = tmp_path_factory.mktemp("disguised")
    root, outside = base / "media", base / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "secret.ts"
    os.mkfifo(secret)
    shutil.copy(media_root / mf.H264, root / "good.mp4")
    relative = os.path.relpath(secret, root)
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\n{}\n#EXT-X-ENDLIST\n"
    (root / "relative.mkv").write_text(playlist.format(relative))
    (root / "absolute.mp4").write_text(playlist.format(f"file:{secret}"))
    (root / "secret-link.ts").symlink_to(secret)
    (root / "list.ts").write_text("ffconcat version 1.0\nfile 'secret-link.ts'\n")
    return root, secret


FILES = {"relative.mkv": "HLS playlist", "absolute.mp4": "HLS playlist", "list.ts": "ffconcat list"}


@pytest.fixture(scope="module")
def guarded_worker(disguised, tmp_path_factory):
    worker = WorkerProcess(tmp_path_factory.mktemp("guarded"), disguised[0]).start()
    yield worker
    worker.stop()


@pytest.mark.integration
@pytest.mark.parametrize("name", list(FILES))
def test_a_disguised_file_is_refused_and_nothing_outside_is_opened(guarded_worker, disguised, name):
    root, secret = disguised
    path = str(root / name)
    with OpenWatch(secret) as watch:
        media = requests.get(f"{guarded_worker.url}/v1/media", params={"source_path": path}, timeout=30)
        answers = [guarded_worker.post_job({"job_id": f"disguised-{n}", "source_path": path,
                                            "configuration": {"force_remux": remux}})
                   for n, remux in enumerate((False, True))]
        time.sleep(0.2)  # a reader the answers raced would still be seen
    assert media.status_code == 422, media.text
    assert FILES[name] in media.json()["error"], media.json()
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert FILES[name] in answer.json()["fields"]["source_path"][0], answer.json()
    assert watch.opened == 0, "a file outside the media roots was opened"
    assert guarded_worker.jobs() == [] and guarded_worker.ffmpeg_pids() == []


@pytest.mark.integration
def test_a_film_beside_them_plays_and_the_watch_can_fail(guarded_worker, disguised):
    """The guard refuses what names other files only; and the watch sees an open: ffprobe
    without the guard, reading the playlist, opens the file outside."""
    root, secret = disguised
    media = requests.get(f"{guarded_worker.url}/v1/media", params={"source_path": str(root / "good.mp4")},
                         timeout=30)
    assert media.status_code == 200 and media.json()["format"].startswith("mov"), media.text
    with OpenWatch(secret) as watch:
        proc = subprocess.Popen(["ffprobe", "-v", "quiet", f"file:{root / 'relative.mkv'}"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: watch.opened, 10, what="the file outside opened")
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("refusal", ["at capacity", "overlapping output_path"])
def test_a_refused_command_starts_nothing(make_worker, media_root, refusal):
    """A subtitled film's text tracks and an HDR film's tone-map LUT are made by FFmpeg on a
    film's first play: a command that is refused must not make them (nor probe, at capacity)."""
    worker = make_worker(max_concurrent_jobs=1 if refusal == "at capacity" else 4)
    running = worker.post_job({"job_id": "running", "source_path": str(media_root / mf.LONG),
                               "configuration": {}})
    assert running.status_code == 202, running.text
    worker.wait_state("running", ("RUNNING",))
    try:
        busy = set(worker.ffmpeg_pids())
        extra = {"output_path": "running/inside"} if refusal == "overlapping output_path" else {}
        with ProcessWatch(worker) as watch:
            for n, name in enumerate((mf.SUBTITLED, mf.HDR10)):
                answer = worker.post_job({"job_id": f"refused-{n}", "source_path": str(media_root / name),
                                          "configuration": {}, **extra})
                assert answer.status_code == (503 if refusal == "at capacity" else 422), answer.text
            time.sleep(0.3)
        started = {pid: argv for pid, argv in watch.seen.items() if pid not in busy
                   and any(os.path.basename(arg) in ("ffmpeg", "ffprobe") for arg in argv[:6])}
        if refusal == "overlapping output_path":  # the command is validated: its source probed, nothing more
            started = {pid: argv for pid, argv in started.items() if not any("ffprobe" in a for a in argv[:6])}
        assert started == {}, started
        for made in ("subtitles", "tonemap"):  # what a first play of these films makes, on disk
            folder = worker.workdir / "spool" / made
            assert not folder.exists() or not any(folder.iterdir()), list(folder.iterdir())
        assert [job["job_id"] for job in worker.jobs()] == ["running"]
    finally:
        worker.delete("running")


def test_an_output_path_through_a_file_is_422(worker, media_root):
    (worker.segment_root / "a file").write_text("not a folder")
    try:
        answer = worker.post_job({"job_id": "through-a-file", "source_path": str(media_root / mf.H264),
                                  "output_path": "a file/job"})
        assert answer.status_code == 422, answer.text
        assert "not a folder" in answer.json()["fields"]["output_path"][0]
        assert worker.ffmpeg_pids() == [] and worker.jobs() == []
    finally:
        (worker.segment_root / "a file").unlink()


def test_a_burned_ass_track_whose_header_is_a_playlist_opens_nothing(tmp_path):
    # The extraction copies a track's header as the file wrote it: here an HLS playlist naming a
    # FIFO outside the roots. The burn-in draws it with libass's own reader (the ass filter), no
    # demuxer: libass refuses a file that is not ASS, FFmpeg ends, and the FIFO is never opened
    # (the subtitles filter opened it through the HLS demuxer: FFmpeg blocked on the FIFO).
    from transcode_worker.ffmpeg_command import picture_args
    from transcode_worker.media import SubtitleStream

    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "secret.mkv")
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "j1.burn.ass").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:30\n#EXTINF:30,\nfile:{outside / 'secret.mkv'}\n#EXT-X-ENDLIST\n")
    track = SubtitleStream(stream=0, index=2, codec="ass")
    spec = job_spec(subtitle=track, burn=True)
    _, filters = picture_args(spec, burn_file="j1.burn.ass")
    assert any("ass=j1.burn.ass" in f for f in filters) and not any("subtitles=" in f for f in filters)
    run = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
                          "color=s=320x180:d=0.2", *filters, "-f", "null", "-"],
                         cwd=folder, capture_output=True, timeout=30)  # (blocked on the FIFO: TimeoutExpired)
    assert b"libass" in run.stderr and b"secret" not in run.stderr, run.stderr.decode()


def test_commands_that_arrive_together_are_refused_before_any_read_out(make_worker, media_root, tmp_path):
    """At capacity 1, six burn-in commands for six films never played: one is taken, five are
    503, and only one read-out of a film's subtitles starts (a slot is held from the first check)."""
    slow = tmp_path / "ffmpeg"
    slow.write_text('#!/bin/sh\ncase "$*" in *"-c:s webvtt"*) sleep 2;; esac\nexec ffmpeg "$@"\n')
    slow.chmod(0o755)
    worker = make_worker(max_concurrent_jobs=1, ffmpeg_path=str(slow), http_threads=8)
    films = [media_root / f"race {n}.mkv" for n in range(6)]
    for film in films:
        shutil.copyfile(media_root / mf.SUBTITLED, film)
    try:
        with ProcessWatch(worker) as watch, concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda n: worker.post_job({
                "job_id": f"burn-{n}", "source_path": str(films[n]),
                "configuration": {"subtitle_stream": 0, "burn_subtitles": True}}), range(6)))
    finally:
        for film in films:
            film.unlink()
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [503] * 5, [a.text for a in answers]
    read_outs = [argv for argv in watch.seen.values() if any("webvtt" in arg for arg in argv)]
    assert len(read_outs) <= 2, read_outs  # one read-out (its shell wrapper and FFmpeg)
    for answer in answers:
        if answer.status_code == 202:
            worker.delete(answer.json()["job_id"])


@pytest.mark.integration
@pytest.mark.parametrize("where", ["the file", "its folder"])
def test_a_source_swapped_for_a_symlink_after_its_command_is_not_followed(worker, media_root, tmp_path, where):
    """The film plays; then it (or the folder it is in) becomes a symlink to a FIFO outside the
    roots, and a player jumps far ahead: the next run of FFmpeg must not open what the symlink
    names (the FIFO tells), and the job fails with the reason at once."""
    folder = media_root / f"swap {where}"
    folder.mkdir()
    source = folder / "film.mkv"
    shutil.copy(media_root / mf.LONG, source)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "film.mkv")
    job_id = f"swap-{where.split()[-1]}"
    try:
        assert worker.post_job({"job_id": job_id, "source_path": str(source),
                                "configuration": {"bitrate_bps": 300_000}}).status_code == 202
        worker.wait_state(job_id, {"RUNNING"})
        os.kill(worker.job(job_id)["pid"], signal.SIGSTOP)  # it will not get there: a jump starts a run
        swap = media_root / "swap.tmp"
        if where == "the file":
            os.symlink(outside / "film.mkv", swap)
            os.replace(swap, source)
        else:
            shutil.rmtree(folder)
            os.symlink(outside, folder)
        with OpenWatch(outside / "film.mkv") as watch:
            answer = requests.get(f"{worker.url}/{job_id}_140.ts", timeout=30)
            time.sleep(0.2)
        assert watch.opened == 0, "FFmpeg followed the swapped source outside the media roots"
        assert answer.status_code == 404 and "source" in answer.text, answer.text
        job = worker.job(job_id)
        assert job["state"] == "FAILED" and "source" in job["error"]["message"], job
        assert worker.delete(job_id).status_code == 200
    finally:  # nothing of it stays in the library the other tests share
        worker.delete(job_id)
        if folder.is_symlink():
            folder.unlink()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.integration
def test_a_swapped_source_is_not_followed_by_its_subtitle_read_out_nor_its_keyframe_scan(media_root, tmp_path):
    """A source becomes a symlink to a FIFO outside the roots between its command's check and the
    subtitle read-out or the keyframe scan (a remux's grid): both open the file themselves
    (inputs.open_source) and so open nothing outside; before, both read the path."""
    roots, outside = tmp_path / "media", tmp_path / "outside"
    roots.mkdir()
    outside.mkdir()
    os.mkfifo(outside / "film.mkv")
    source = roots / "film.mkv"
    shutil.copy(media_root / mf.SUBTITLED, source)
    info = media.run_ffprobe("ffprobe", str(source))
    os.symlink(outside / "film.mkv", roots / "swap")
    os.replace(roots / "swap", source)
    (tmp_path / "segments").mkdir()
    settings = load_settings(environ={
        "TRANSCODE_WORKER_MEDIA_ROOTS": str(roots), "TRANSCODE_WORKER_SEGMENT_ROOT": str(tmp_path / "segments"),
        "TRANSCODE_WORKER_SPOOL_DIR": str(tmp_path / "spool")})
    with OpenWatch(outside / "film.mkv") as watch:
        extraction = SubtitleCache("ffmpeg", tmp_path / "subtitles", 1 << 20, media_roots=[roots]).get(source, info)
        assert extraction.ready.wait(30) and "cannot extract the subtitles: the source" in extraction.error
        with pytest.raises(Refused) as refused:
            JobManager(settings).plan_of(job_spec(source=source, media=info, force_remux=True,
                                                  folder=tmp_path / "segments" / "j1"))
        assert refused.value.status == 422 and "source" in str(refused.value)
        time.sleep(0.2)
    assert watch.opened == 0, "the source was followed outside the media roots"
