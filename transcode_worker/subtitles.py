"""Text subtitle tracks, extracted once per source file and shared by every job of it.

A subtitle track is spread over the whole file: reading it means reading the file to its end,
which is what stalls a player for minutes when a server does it before the first frame. Here one
FFmpeg pass, in the background and at the lowest CPU priority, writes every text track of a file
as WebVTT (and ASS tracks as ASS too, styling kept for burn-in) plus the fonts the file carries,
into ``spool_dir/subtitles/<key>/``, keyed by path, size and mtime like the probe cache. Jobs
of that file, now and later, read the small files; a replaced file gets a new key. The cache is
bounded (``subtitle_cache_mb``): the entries used least recently go first, and entries whose
source changed or vanished are removed by the library scan (``prune``).
"""
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from . import bounded, inputs, webvtt
from .validation import is_inside

log = logging.getLogger(__name__)

EXTRACT_TIMEOUT_S = 3600
DONE = "done.json"


class Extraction:
    """One source file's text tracks in the cache; `ready` once FFmpeg has written them all."""

    def __init__(self, folder, source):
        self.folder = Path(folder)
        self.source = source
        self.ready = threading.Event()
        self.error = None
        self._cues = {}
        self._lock = threading.Lock()

    def vtt(self, stream):
        return self.folder / f"{stream}.vtt"

    def ass(self, stream):
        return self.folder / f"{stream}.ass"

    @property
    def fonts(self):
        return self.folder / "fonts"

    def cues(self, stream):
        """The WebVTT cues of subtitle track `stream` (position among the file's subtitles)."""
        with self._lock:
            if stream not in self._cues:
                cues = webvtt.parse(self.vtt(stream).read_text(encoding="utf-8", errors="replace"))
                if self.ass(stream).exists():  # FFmpeg's WebVTT keeps italics; the places come from here
                    positions = webvtt.ass_positions(self.ass(stream).read_text(encoding="utf-8", errors="replace"))
                    cues = webvtt.with_positions(cues, positions)
                self._cues[stream] = cues
            return self._cues[stream]


def text_tracks(info):
    return [s for s in info.subtitles if s.text]


class SubtitleCache:
    def __init__(self, ffmpeg, folder, max_bytes, *, media_roots, prefix=()):
        self.ffmpeg = ffmpeg
        self.media_roots = list(media_roots)  # a read-out opens only a file inside them (inputs.open_source)
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.prefix = list(prefix)  # nice: extraction is background work
        self._lock = threading.Lock()
        self._entries = {}  # key -> Extraction (this process's, done or running)
        self.extractions_run = 0
        # in_use() -> the keys jobs hold now (their burn-in draws from them, their WebVTT is served
        # from them): never evicted nor pruned (JobManager sets it)
        self.in_use = lambda: ()

    @staticmethod
    def key(path):
        st = os.stat(path)
        return hashlib.sha1(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]

    def get(self, source, info):
        """The Extraction of `source`'s text tracks (started now if nobody has yet); None when
        the file has no text track."""
        if not text_tracks(info):
            return None
        key = self.key(source)
        with self._lock:
            known = self._entries.get(key)
            if known is not None:
                if known.ready.is_set() and known.error is None:
                    _touch(known.folder / DONE)
                return known
            extraction = Extraction(self.folder / key, str(source))
            self._entries[key] = extraction
        if (extraction.folder / DONE).exists():  # extracted by an earlier run of the worker
            _touch(extraction.folder / DONE)
            extraction.ready.set()
        else:
            threading.Thread(target=self._extract, args=(extraction, info), name=f"subtitles-{key}",
                             daemon=True).start()
        return extraction

    def _extract(self, extraction, info):
        """The extraction thread: whatever fails (the cache's folder too: a full or vanished
        spool_dir), `ready` is set with the error, and the next job tries again."""
        tmp = extraction.folder.with_name(extraction.folder.name + ".tmp")
        argv = [*self.prefix, self.ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y"]
        for number, index in enumerate(info.fonts):
            argv += [f"-dump_attachment:{index}", str(tmp / "fonts" / f"font{number}.ttf")]
        argv += [*inputs.GUARD, "-i", None]  # the source's descriptor, opened below
        for track in text_tracks(info):
            argv += ["-map", f"0:{track.index}", "-c:s", "webvtt", "-f", "webvtt", str(tmp / f"{track.stream}.vtt")]
            if track.codec in ("ass", "ssa"):
                argv += ["-map", f"0:{track.index}", "-c:s", "copy", "-f", "ass", str(tmp / f"{track.stream}.ass")]
        started = time.monotonic()
        self.extractions_run += 1
        fd = None
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "fonts").mkdir(parents=True)
            try:  # the file checked to lie inside the roots now, not whatever the path names later
                fd = inputs.open_source(extraction.source, self.media_roots)
            except ValueError as exc:
                raise RuntimeError(f"the source {exc}") from None
            argv[argv.index(None)] = inputs.fd_url(fd)
            proc = bounded.run(argv, EXTRACT_TIMEOUT_S, pass_fds=(fd,))
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            if proc.returncode != 0 or not all((tmp / f"{t.stream}.vtt").exists() for t in text_tracks(info)):
                raise RuntimeError((lines or [f"FFmpeg exited with {proc.returncode}"])[-1])
            size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
            (tmp / DONE).write_text(json.dumps({"source": extraction.source, "bytes": size}))
            shutil.rmtree(extraction.folder, ignore_errors=True)
            os.rename(tmp, extraction.folder)
            log.info("subtitles of %r extracted in %.1fs (%d track(s), %d bytes)", extraction.source,
                     time.monotonic() - started, len(text_tracks(info)), size)
        except Exception as exc:  # (OSError, RuntimeError, TimeoutExpired; a bug too): said, tried again
            extraction.error = f"cannot extract the subtitles: {exc}"
            log.warning("%r: %r", extraction.source, extraction.error)  # %r: a path may hold a line break
            shutil.rmtree(tmp, ignore_errors=True)
            with self._lock:  # a later job tries again
                self._entries.pop(extraction.folder.name, None)
        finally:
            if fd is not None:
                os.close(fd)
            try:
                self.evict(keep=extraction.folder.name)
            finally:
                extraction.ready.set()

    # -- bounds --------------------------------------------------------------------------------
    def _done_entries(self):
        """[(last used, bytes, folder)] of the finished entries on disk."""
        found = []
        for done in self.folder.glob(f"*/{DONE}"):
            try:
                found.append((done.stat().st_mtime, json.loads(done.read_text())["bytes"], done.parent))
            except (OSError, ValueError, KeyError):
                continue
        return sorted(found)

    def evict(self, keep=None):
        """Remove the least recently used entries until the cache fits in max_bytes."""
        entries = self._done_entries()
        total = sum(size for _, size, _ in entries)
        in_use = set(self.in_use())
        for _, size, folder in entries:
            if total <= self.max_bytes:
                break
            if folder.name == keep or folder.name in in_use or self._running(folder.name):
                continue
            self._remove(folder)
            total -= size

    def prune(self, unreachable=()):
        """Remove entries whose source changed or vanished, and what an interrupted run left; an
        entry whose source is under an `unreachable` folder (the library's: a share that is away)
        or cannot be looked at now (a stale or failing mount) is kept."""
        in_use = set(self.in_use())
        for folder in list(self.folder.glob("*")) if self.folder.exists() else ():
            if self._running(folder.name.removesuffix(".tmp")) or folder.name in in_use:
                continue
            try:
                source = json.loads((folder / DONE).read_text())["source"]
            except (OSError, ValueError, KeyError):
                current = False
            else:
                try:
                    current = self.key(source) == folder.name
                except FileNotFoundError:
                    current = any(is_inside(os.path.realpath(source), u) for u in unreachable)
                except OSError:  # ESTALE, EIO, ENOTCONN: the share is sick, the file may be fine
                    current = True
            if not current:
                self._remove(folder)

    def _running(self, key):
        with self._lock:
            known = self._entries.get(key)
            return known is not None and not known.ready.is_set()

    def _remove(self, folder):
        with self._lock:
            self._entries.pop(folder.name, None)
        shutil.rmtree(folder, ignore_errors=True)


def _touch(path):
    try:
        os.utime(path)
    except OSError:
        pass
