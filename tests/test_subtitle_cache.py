"""The subtitle cache with real FFmpeg: one pass per file, shared, bounded, pruned."""
import os
import shutil

import pytest

import media_files as mf
from transcode_worker import media
from transcode_worker.subtitles import SubtitleCache

pytestmark = pytest.mark.integration


@pytest.fixture
def film(media_root, tmp_path):
    """A copy of the subtitled film (the tests change and delete it)."""
    source = tmp_path / "media" / "film.mkv"
    source.parent.mkdir()
    shutil.copy(media_root / mf.SUBTITLED, source)
    return source, media.run_ffprobe("ffprobe", str(source))


def test_one_pass_gives_every_text_track_and_is_shared(film, tmp_path):
    source, info = film
    cache = SubtitleCache("ffmpeg", tmp_path / "cache", 1 << 20, media_roots=[tmp_path / "media"])
    first = cache.get(source, info)
    assert first.ready.wait(30) and first.error is None
    assert [c.text for c in first.cues(0)] == [text for _, _, text in mf.CUES]
    assert [c.text for c in first.cues(2)] == ["<i>stylé</i>"] and first.ass(2).exists()
    if mf.FONT.exists():  # the file's fonts, for burning the styled track
        assert [f.read_bytes() for f in first.fonts.iterdir()] == [mf.FONT.read_bytes()]
    assert cache.get(source, info) is first and cache.extractions_run == 1  # shared by the next job
    again = SubtitleCache("ffmpeg", tmp_path / "cache", 1 << 20, media_roots=[tmp_path / "media"])  # a restarted worker
    assert again.get(source, info).ready.is_set() and again.extractions_run == 0


def test_a_file_without_text_tracks_needs_nothing(media_root, tmp_path):
    cache = SubtitleCache("ffmpeg", tmp_path / "cache", 1 << 20, media_roots=[tmp_path / "media"])
    assert cache.get(media_root / mf.PGS_FILM, media.run_ffprobe("ffprobe", str(media_root / mf.PGS_FILM))) is None


def test_the_cache_keeps_to_its_size_and_forgets_changed_files(film, tmp_path):
    source, info = film
    other = source.with_name("other.mkv")
    shutil.copy(source, other)
    cache = SubtitleCache("ffmpeg", tmp_path / "cache", 1, media_roots=[tmp_path / "media"])  # room for the newest only
    first = cache.get(source, info)
    first.ready.wait(30)
    second = cache.get(other, info)
    second.ready.wait(30)
    assert not first.folder.exists() and second.folder.exists()  # the least recently used went
    os.utime(other, (1, 1))  # the file changed: its entry is stale
    cache.prune()
    assert not second.folder.exists() and list((tmp_path / "cache").iterdir()) == []


def test_a_failed_extraction_says_why_and_is_tried_again(film, tmp_path):
    source, info = film
    cache = SubtitleCache(str(tmp_path / "no-ffmpeg"), tmp_path / "cache", 1 << 20, media_roots=[tmp_path / "media"])
    failed = cache.get(source, info)
    assert failed.ready.wait(30) and "cannot extract the subtitles" in failed.error
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written is kept
    cache.ffmpeg = "ffmpeg"
    retried = cache.get(source, info)
    assert retried is not failed and retried.ready.wait(30) and retried.error is None
