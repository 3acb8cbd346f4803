"""The media library: probes ahead of play, kept on disk, with the real ffprobe on test media."""
import json
import logging
import shutil
import stat

import pytest

from media_files import H264, SUBTITLED, TEXT
from transcode_worker.library import CACHE_FILE, VIDEO_EXTENSIONS, MediaLibrary
from transcode_worker.media import ProbeError
from transcode_worker.subtitles import SubtitleCache
from worker_process import wait_for


def video_files(folder):
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)


def test_a_scan_probes_each_video_once_and_a_restart_runs_no_ffprobe(media_root, tmp_path):
    library = MediaLibrary("ffprobe", [str(media_root)], str(tmp_path))
    assert library.scan() == len(video_files(media_root)) > 3
    assert library.scan() == 0  # nothing changed: nothing probed

    # a new process with the same cache and an ffprobe that cannot run still knows every file
    restarted = MediaLibrary("/nonexistent/ffprobe", [str(media_root)], str(tmp_path))
    assert restarted.scan() == 0
    info = restarted.info(str(media_root / H264))
    assert info.duration_s == pytest.approx(6, abs=0.1) and info.video.codec == "h264"
    assert restarted.probes_run == 0


def test_a_replaced_file_is_probed_again_and_a_rejected_one_remembered(media_root, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    movie = root / "movie.mp4"
    shutil.copy(media_root / H264, movie)
    library = MediaLibrary("ffprobe", [str(root)], str(tmp_path))
    assert library.info(str(movie)).audio[0].codec == "aac"

    movie.write_text("not a movie any more\n")
    for _ in range(2):
        with pytest.raises(ProbeError):
            library.info(str(movie))
    assert library.probes_run == 2  # the first probe, and one for the new version; not one per ask
    assert library.scan() == 0


def test_the_scan_reads_only_video_files_inside_the_roots(media_root, tmp_path):
    root, outside = tmp_path / "media", tmp_path / "outside"
    (root / ".hidden").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(media_root / H264, outside / "secret.mp4")
    (root / "escape.mp4").symlink_to(outside / "secret.mp4")
    shutil.copy(media_root / H264, root / ".hidden" / "trash.mp4")
    shutil.copy(media_root / H264, root / "movie.MP4")
    shutil.copy(media_root / TEXT, root / TEXT)
    library = MediaLibrary("ffprobe", [str(root)], str(tmp_path))
    assert library.scan() == 1
    assert len(library) == 1


def test_files_gone_from_the_library_are_forgotten(media_root, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    shutil.copy(media_root / H264, root / "a.mp4")
    shutil.copy(media_root / H264, root / "b.mp4")
    library = MediaLibrary("ffprobe", [str(root)], str(tmp_path))
    library.scan()
    (root / "b.mp4").unlink()
    library.scan()
    saved = json.loads((tmp_path / CACHE_FILE).read_text())["files"]
    assert list(saved) == [str(root / "a.mp4")]


@pytest.mark.parametrize("away", ["renamed", "unmounted"])
def test_a_media_root_away_for_a_moment_keeps_what_is_known(media_root, tmp_path, away, caplog):
    """A root renamed away (a NAS remount), or an empty mount point in its place (unmounted): the
    scan keeps every file it knew there, and their subtitle read-outs; back, nothing is probed
    or read out again. Before, one scan forgot them all."""
    root = tmp_path / "nas"
    (root / "films").mkdir(parents=True)
    shutil.copy(media_root / H264, root / "films" / "a.mp4")
    shutil.copy(media_root / SUBTITLED, root / "films" / "b.mkv")
    cache = SubtitleCache("ffmpeg", tmp_path / "subtitles", 1 << 30, media_roots=[root])
    library = MediaLibrary("ffprobe", [str(root)], str(tmp_path), after_scan=cache.prune)
    assert library.scan() == 2
    film = str(root / "films" / "b.mkv")
    extraction = cache.get(film, library.info(film))
    assert extraction.ready.wait(30) and extraction.error is None
    if away == "renamed":
        root.rename(tmp_path / "elsewhere")
    else:
        (root / "films").rename(tmp_path / "elsewhere")
    try:
        with caplog.at_level(logging.WARNING, logger="transcode_worker.library"):
            assert library.scan() == 0
        assert len(library) == 2 and extraction.folder.exists()
        assert "cannot be reached: what is known of its files is kept" in caplog.text
    finally:
        if away == "renamed":
            (tmp_path / "elsewhere").rename(root)
        else:
            (tmp_path / "elsewhere").rename(root / "films")
    assert library.scan() == 0 and library.probes_run == 2
    assert cache.get(film, library.info(film)) is extraction and cache.extractions_run == 1
    (root / "films" / "a.mp4").unlink()  # a file really gone is still forgotten
    library.scan()
    assert len(library) == 1


def test_a_share_under_a_root_unmounted_beside_others_keeps_what_is_known(media_root, tmp_path):
    """Two shares mounted under one root; one goes away (its mount point left empty) while the
    other still has films: what is known of the first is kept. Before, only a root that had no
    film at all counted as unreachable."""
    root = tmp_path / "nas"
    for share in ("films", "series"):
        (root / share).mkdir(parents=True)
        shutil.copy(media_root / H264, root / share / f"{share}.mp4")
    library = MediaLibrary("ffprobe", [str(root)], str(tmp_path))
    assert library.scan() == 2
    (root / "series").rename(tmp_path / "away")
    (root / "series").mkdir()  # the empty mount point
    assert library.scan() == 0 and len(library) == 2 and library.unreachable == (str(root / "series"),)
    (root / "series").rmdir()
    (tmp_path / "away").rename(root / "series")
    assert library.scan() == 0 and library.probes_run == 2 and library.unreachable == ()


def test_an_unreadable_cache_is_ignored_and_a_missing_ffprobe_not_remembered(media_root, tmp_path, caplog):
    (tmp_path / CACHE_FILE).write_text("{ not json")
    with caplog.at_level(logging.WARNING):
        library = MediaLibrary("/nonexistent/ffprobe", [str(media_root)], str(tmp_path))
    assert len(library) == 0 and "unreadable" in caplog.text
    with pytest.raises(ProbeError, match="cannot run ffprobe"):
        library.info(str(media_root / H264))
    assert len(library) == 0  # about this machine, not the file


def test_a_job_on_a_scanned_file_starts_ffmpeg_without_ffprobe(make_worker, media_root, tmp_path):
    calls = tmp_path / "ffprobe-calls"
    wrapper = tmp_path / "ffprobe"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexec ffprobe "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    worker = make_worker(ffprobe_path=str(wrapper), library_scan_interval_s=600)
    cache = worker.workdir / "spool" / CACHE_FILE
    wait_for(lambda: cache.exists() and str(media_root / H264) in cache.read_text(), 30, what="the first scan")
    probed = calls.read_text().count("\n")
    # each file once, and a PQ file's first frame once more (HDR10+ lives in frame metadata)
    files = {line.rsplit("file:", 1)[1] for line in calls.read_text().splitlines()}
    assert files == {str(p) for p in video_files(media_root)}
    assert probed == len(files) + sum(1 for line in calls.read_text().splitlines() if "-read_intervals" in line)

    response = worker.post_job({"job_id": "scanned", "source_path": str(media_root / H264)})
    assert response.status_code == 202, response.text
    assert calls.read_text().count("\n") == probed  # FFmpeg started on what the scan found
    worker.delete("scanned")
