"""The media library as the worker knows it: what each source file holds, probed ahead of play.

A play must not wait on ffprobe, so the worker probes its media roots in the background (at start,
then every ``library_scan_interval_s``, at the lowest CPU priority) and keeps the findings on disk
in ``spool_dir``, keyed by path, size and mtime: a restart probes only what changed, and a replaced
file is probed again. A file nobody has seen yet (copied in a minute ago) is probed when a job asks
for it, once. Files ffprobe rejects are remembered too, so a rescan does not retry them until they
change.

A root (or a folder under it) that cannot be listed, is missing, or lists empty while files under
it were known (an unmounted share's mount point) is unreachable, not empty: what is known of its
files is kept, and so are their subtitle read-outs, so a NAS back after an outage costs no probe.
"""
import json
import logging
import os
import threading
import time

from . import media
from .supervisor import nice_prefix, pdeathsig_prefix
from .validation import is_inside

log = logging.getLogger(__name__)

CACHE_FILE = "probe-cache.json"
CACHE_VERSION = 10  # 2: MediaInfo.interlaced; 3: every track, HDR kind; 4: attached fonts; 5: PQ peak;
# 6: the peak of Dolby Vision on an HDR10 base layer; 7: HLG's peak; 8: a source is read by a media
# container's demuxer only (a probe that found an HLS playlist or an ffconcat list is dropped);
# 9: a file's tags are checked (languages that are tags, titles without control characters);
# 10: the file's start time (film time 0 of a remux's grid)
SAVE_EVERY = 50  # probes between two saves during a long first scan
VIDEO_EXTENSIONS = frozenset(
    ".mkv .mp4 .m4v .mov .avi .ts .m2ts .mts .webm .wmv .mpg .mpeg .flv .ogv .vob .3gp".split()
)


class MediaLibrary:
    """Probe findings per file version; `info()` for a job, `start()` for the background scan."""

    def __init__(self, ffprobe, media_roots, cache_dir, scan_interval_s=0, after_scan=None):
        self.ffprobe = ffprobe
        self.media_roots = list(media_roots)
        self.cache_path = os.path.join(cache_dir, CACHE_FILE)
        self.scan_interval_s = scan_interval_s
        self.after_scan = after_scan  # what else keys on the files: the subtitle cache prunes itself
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # one writer of the file at a time
        self._entries = self._load()  # real path -> (size, mtime_ns, MediaInfo or None, error or None)
        self._unsaved = 0
        self._stop = threading.Event()
        self._thread = None
        self.probes_run = 0
        self.unreachable = ()  # the folders the last scan could not list (their files are kept)

    def info(self, path, low_priority=False):
        """MediaInfo of the file at `path` (resolved and checked by the caller).

        Raises media.ProbeError when the file is not playable media, OSError when it cannot be read."""
        st = os.stat(path)
        version = (st.st_size, st.st_mtime_ns)
        with self._lock:
            known = self._entries.get(path)
        if known is None or known[:2] != version:
            known = version + self._probe(path, low_priority)
            with self._lock:
                self._entries[path] = known
                self._unsaved += 1
        if known[3] is not None:
            raise media.ProbeError(known[3])
        return known[2]

    def _probe(self, path, low_priority):
        prefix = pdeathsig_prefix() + (nice_prefix() if low_priority else [])
        self.probes_run += 1
        try:
            return media.run_ffprobe(self.ffprobe, path, prefix), None
        except media.ProbeError as exc:
            if str(exc).startswith(("cannot run ffprobe", "ffprobe took longer")):
                raise  # about this machine, not the file: never remembered
            return None, str(exc)

    def __len__(self):
        with self._lock:
            return len(self._entries)

    # -- the background scan ------------------------------------------------------------------
    def start(self):
        if self.scan_interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="library-scan", daemon=True)
            self._thread.start()

    def stop(self, timeout=2.0):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.save()

    def _run(self):
        while True:
            started = time.monotonic()
            try:
                probed = self.scan()
            except Exception:  # a scan must never take the worker down
                log.exception("library scan failed")
            else:
                log.info("library scan: %d file(s) known, %d probed, %.1fs", len(self), probed,
                         time.monotonic() - started)
            if self._stop.wait(self.scan_interval_s):
                return

    def scan(self):
        """Probe every video file under the media roots that is not known yet; return how many."""
        before = self.probes_run
        seen = set()
        unreachable = []
        for path in self._video_files(unreachable):
            if self._stop.is_set():
                return self.probes_run - before  # partial: nothing is forgotten
            seen.add(path)
            try:
                self.info(path, low_priority=True)
            except (media.ProbeError, OSError):
                pass  # remembered (or unreadable now): a job asking for it gets the reason
            if self._unsaved >= SAVE_EVERY:
                self.save()
        with self._lock:  # files gone from the library since the last scan (not merely out of reach)
            for path in [p for p in self._entries if p not in seen and not any(is_inside(p, u) for u in unreachable)]:
                del self._entries[path]
                self._unsaved += 1
        self._say_unreachable(unreachable)
        self.save()
        if self.after_scan is not None:
            self.after_scan(unreachable)
        return self.probes_run - before

    def _say_unreachable(self, unreachable):
        for folder in sorted(set(unreachable) - set(self.unreachable)):
            log.warning("library scan: %s cannot be reached: what is known of its files is kept", folder)
        for folder in sorted(set(self.unreachable) - set(unreachable)):
            log.info("library scan: %s can be reached again", folder)
        self.unreachable = tuple(unreachable)

    def _video_files(self, unreachable):
        """The video files under the roots; appends to `unreachable` each folder that could not
        be listed or is empty while files under it are known (a share's mount point, the share
        unmounted: the root's own or one under it), and each root that is missing or holds no
        video file while files under it are known."""
        for root in self.media_roots:
            real_root = os.path.realpath(root)
            if not os.path.isdir(root):
                unreachable.append(real_root)
                continue
            found = 0
            for path in self._walk(root, unreachable):
                found += 1
                yield path
            if not found and self._knows_under(real_root) and real_root not in unreachable:
                unreachable.append(real_root)

    def _knows_under(self, folder):
        with self._lock:
            return any(is_inside(p, folder) for p in self._entries)

    def _walk(self, root, unreachable):
        def cannot_list(exc):
            unreachable.append(os.path.realpath(exc.filename or root))

        for folder, subfolders, names in os.walk(root, onerror=cannot_list):
            if not subfolders and not names and self._knows_under(os.path.realpath(folder)):
                unreachable.append(os.path.realpath(folder))  # an unmounted share's mount point
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or os.path.splitext(name)[1].lower() not in VIDEO_EXTENSIONS:
                    continue
                real = os.path.realpath(os.path.join(folder, name))
                # the same rule as a job's source: a link out of the roots is never read
                if any(is_inside(real, r) for r in self.media_roots) and os.path.isfile(real):
                    yield real

    # -- on disk ------------------------------------------------------------------------------
    def _load(self):
        try:
            with open(self.cache_path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("version") != CACHE_VERSION:
                return {}
            return {
                path: (e["size"], e["mtime_ns"], e["info"] and media.info_from_dict(e["info"]), e["error"])
                for path, e in data["files"].items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("probe cache %s unreadable (%s): starting afresh", self.cache_path, exc)
            return {}

    def save(self):
        """Write the findings (atomically: a crash mid-write leaves the previous file)."""
        with self._save_lock, self._lock:
            if not self._unsaved:
                return
            files = {
                path: {"size": size, "mtime_ns": mtime, "info": info and media.info_to_dict(info), "error": error}
                for path, (size, mtime, info, error) in self._entries.items()
            }
            self._unsaved = 0
            tmp = self.cache_path + ".tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump({"version": CACHE_VERSION, "files": files}, fh)
                os.replace(tmp, self.cache_path)
            except OSError as exc:
                log.warning("cannot save the probe cache %s: %s", self.cache_path, exc)
