"""inputs.open_source: the file a run of FFmpeg reads is opened by the worker and checked where it
really is, so a source swapped since its command came opens nothing outside the media roots."""
import os
import resource

import pytest

from transcode_worker import inputs


@pytest.fixture
def library(tmp_path):
    root, outside = tmp_path / "media", tmp_path / "outside"
    (root / "shows").mkdir(parents=True)
    outside.mkdir()
    (root / "shows" / "film.mkv").write_bytes(b"inside")
    (outside / "film.mkv").write_bytes(b"outside")
    return root, outside


def test_a_file_inside_the_roots_opens_and_ffmpeg_reads_that_very_file(library):
    root, _ = library
    path = root / "shows" / "film.mkv"
    fd = inputs.open_source(str(path), [str(root)])
    try:
        path.unlink()  # whatever the path names from now on, the descriptor holds the film
        path.write_bytes(b"another")
        assert os.read(fd, 100) == b"inside"
        assert inputs.fd_url(fd) == f"file:/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def test_a_file_swapped_for_a_symlink_is_refused(library):
    root, outside = library
    path = root / "shows" / "film.mkv"
    path.unlink()
    path.symlink_to(outside / "film.mkv")
    with pytest.raises(ValueError, match="no longer a regular file"):  # the link itself, not followed
        inputs.open_source(str(path), [str(root)])


def test_a_folder_swapped_for_a_symlink_is_refused(library):
    root, outside = library
    (root / "shows" / "film.mkv").unlink()
    (root / "shows").rmdir()
    (root / "shows").symlink_to(outside)
    with pytest.raises(ValueError, match="no longer inside the media roots"):
        inputs.open_source(str(root / "shows" / "film.mkv"), [str(root)])


def test_a_fifo_in_its_place_is_refused_without_waiting_for_a_writer(library):
    root, _ = library
    path = root / "shows" / "film.mkv"
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(ValueError, match="no longer a regular file"):
        inputs.open_source(str(path), [str(root)])


def test_a_root_of_the_same_prefix_is_not_inside(library, tmp_path):
    root, _ = library
    twin = tmp_path / "media-twin"
    twin.mkdir()
    (twin / "film.mkv").write_bytes(b"twin")
    with pytest.raises(ValueError, match="no longer inside"):
        inputs.open_source(str(twin / "film.mkv"), [str(root)])


def test_a_source_that_cannot_be_opened_for_now_is_told_apart_from_one_that_is_gone(library):
    """Out of descriptors (EMFILE; a stale share gives ESTALE): the job is not failed for it, the
    player is told to try again (jobs.JobManager.want: 503). A file that is gone is for good."""
    root, _ = library
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))  # no descriptor above stdin/out/err
    try:
        with pytest.raises(inputs.SourceUnavailable, match="Too many open files"):
            inputs.open_source(str(root / "shows" / "film.mkv"), [str(root)])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with pytest.raises(ValueError, match="No such file") as gone:
        inputs.open_source(str(root / "shows" / "gone.mkv"), [str(root)])
    assert not isinstance(gone.value, inputs.SourceUnavailable)
