"""Where a source's video keyframes are, so a remux can be cut on them: a whole-film HLS VOD
playlist names every segment before FFmpeg runs, and FFmpeg cuts a copied stream on keyframes only.

The container's own index answers in milliseconds: Matroska's Cues, MP4's sync-sample table
(stss, with the sample times of stts, ctts, mdhd and the edit list). An ffprobe packet scan reads
the whole film (seconds to minutes) and is the fallback for containers without an index (MPEG-TS,
AVI), a Matroska without Cues, fragmented MP4, and anything this module does not read with
confidence. Times are the packet pts_time ffprobe reports: the stream's own timestamps, an MP4's
edit list applied as FFmpeg's mov demuxer applies it.

The file is untrusted: every size read from it is checked against its parent and a cap, every
loop advances through bytes already read or is counted, and anything unexpected answers None
(a scan then) rather than a guess.
"""
import array
import bisect
import hashlib
import itertools
import json
import logging
import operator
import os
import shutil
import struct
import subprocess
import sys
import threading
from fractions import Fraction
from typing import NamedTuple

from . import bounded, inputs

log = logging.getLogger(__name__)

MAX_READ = 64 << 20        # the largest index (Cues, moov) read into memory
MAX_SAMPLES = 4_000_000    # frames of one MP4 track (a 3-hour film at 60 fps is 648 000)
MAX_TOP_LEVEL = 1024       # top-level boxes / elements looked at before the index is found


class Keyframes(NamedTuple):
    times: tuple            # seconds, ascending: the video stream's keyframe pts_time
    source: str             # "cues", "stss" or "scan"


class _Malformed(Exception):
    """The file is not what its index claims; from_index answers None."""


def from_index(path, stream_index):
    """Keyframes of FFmpeg's stream `stream_index` from the container's index, reading nothing
    of the media data; None when the file has no index this module reads (then: scan)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            f.seek(0)
            if magic == b"\x1a\x45\xdf\xa3":
                return matroska(f, stream_index)
            if f.read(8)[4:8] in (b"ftyp", b"moov", b"free", b"skip", b"wide", b"mdat"):
                return mp4(f, stream_index)
    except (_Malformed, OSError, ValueError, IndexError, OverflowError, struct.error):
        pass
    return None


def scan(ffprobe, path, stream_index, timeout_s, *, prefix=(), pass_fds=()):
    """Keyframes found by one ffprobe pass over every packet of the stream (the fallback).

    `prefix` goes before the command, as media.run_ffprobe's does (``nice`` for background work);
    `pass_fds`: the source's descriptor when `path` is its /proc/self/fd link (inputs.open_source).
    Raises ValueError, saying why, when ffprobe fails or finds no keyframe."""
    exe = shutil.which(ffprobe)
    if exe is None:
        raise ValueError(f"cannot run ffprobe ({ffprobe}): not found")
    argv = [*prefix, exe, "-v", "error", *inputs.GUARD, "-select_streams", str(int(stream_index)),
            "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", "-i", inputs.url(path)]
    try:
        proc = bounded.run(argv, timeout_s, pass_fds=pass_fds)
    except subprocess.TimeoutExpired:
        raise ValueError(f"the keyframe scan took longer than {timeout_s}s") from None
    except OSError as exc:
        raise ValueError(f"cannot run ffprobe ({exe}): {exc.strerror}") from None
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        last = (stderr.strip().splitlines()[-1:] or ["unknown error"])[0]
        raise ValueError("keyframe scan: " + (inputs.refusal(stderr) or last.replace(inputs.url(path) + ": ", "")))
    times = parse_scan(proc.stdout.decode(errors="replace"))
    if not times:
        raise ValueError(f"keyframe scan: stream {stream_index} has no keyframe with a timestamp")
    return Keyframes(times, "scan")


def read(ffprobe, path, stream_index, timeout_s, *, prefix=(), pass_fds=()):
    """The keyframes from the index when the container has one, else from a scan."""
    return from_index(path, stream_index) or scan(ffprobe, path, stream_index, timeout_s, prefix=prefix,
                                                  pass_fds=pass_fds)


class ScanStore:
    """The keyframes scans found, kept on disk (one JSON file per source, in `folder`), so a source
    without an index is scanned once, not once per start of the worker. A file names the source,
    stream, modification time and size it was found for: a changed file is scanned again. At most
    `limit` files are kept, the least recently used dropped first."""

    def __init__(self, folder, limit=256):
        self.folder = folder
        self.limit = limit

    def _path(self, key):
        return os.path.join(self.folder, hashlib.sha256(repr(key).encode()).hexdigest()[:32] + ".json")

    def get(self, key):
        """The times kept for `key` (source, stream index, mtime_ns, size), or None."""
        path = self._path(key)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("key") != list(key):
                return None
            times = tuple(float(t) for t in data["times"])
            os.utime(path)  # used: kept longest
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return times or None

    def put(self, key, times):
        try:
            os.makedirs(self.folder, exist_ok=True)
            path = self._path(key)
            with open(path + ".tmp", "w", encoding="utf-8") as fh:
                json.dump({"key": list(key), "times": list(times)}, fh)
            os.replace(path + ".tmp", path)
            kept = sorted((e for e in os.scandir(self.folder) if e.name.endswith(".json")),
                          key=lambda e: e.stat().st_mtime)
            for entry in kept[:max(0, len(kept) - self.limit)]:
                os.unlink(entry.path)
        except OSError as exc:  # a full or read-only disk: the scan is still in memory
            log.warning("cannot keep a keyframe scan in %s: %s", self.folder, exc)


class Known:
    """The keyframes of the sources remuxed lately: the last `limit` in memory, and those a scan
    found (no index) on disk too (ScanStore), each under the file's version (its path, stream,
    modification time and size)."""

    def __init__(self, ffprobe, folder, timeout_s, limit=64):
        self.ffprobe = ffprobe
        self.timeout_s = timeout_s
        self.limit = limit
        self._scans = ScanStore(folder)
        self._memory = {}
        self._lock = threading.Lock()

    def times(self, source, stream_index, fd):
        """The keyframe times of FFmpeg's stream `stream_index` of `source`, read through `fd` (the
        source opened by the worker: inputs.open_source), never the path. ValueError says why not."""
        stat = os.fstat(fd)
        key = (str(source), stream_index, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            found = self._memory.get(key)
        if found is None:
            found = self._scans.get(key)  # a source without an index, scanned before
        if found is None:
            reading = read(self.ffprobe, f"/proc/self/fd/{fd}", stream_index, self.timeout_s, pass_fds=(fd,))
            found = reading.times
            if reading.source == "scan":
                self._scans.put(key, found)
        with self._lock:
            self._memory[key] = found
            while len(self._memory) > self.limit:
                self._memory.pop(next(iter(self._memory)))
        return found


def parse_scan(text):
    """Sorted pts_time of the packets flagged K in ffprobe's csv of pts_time,flags (pure)."""
    times = set()
    for line in text.splitlines():
        pts, _, flags = line.strip().partition(",")
        if "K" in flags:
            try:
                times.add(float(pts))
            except ValueError:  # N/A: a packet without a timestamp cannot be cut on
                pass
    return tuple(sorted(times))


# -- Matroska / WebM: EBML elements (RFC 8794), Matroska's Cues (RFC 9559) ---------------------
SEGMENT, SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMP_SCALE, TRACKS, TRACK_ENTRY = 0x1549A966, 0x2AD7B1, 0x1654AE6B, 0xAE
TRACK_NUMBER, TRACK_TYPE, CODEC_ID, TRACK_TIMESTAMP_SCALE = 0xD7, 0x83, 0x86, 0x23314F
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS, CUE_TRACK = 0x1C53BB6B, 0xBB, 0xB3, 0xB7, 0xF7
CLUSTER = 0x1F43B675
# Track types FFmpeg's matroska demuxer makes a stream of (video, audio, subtitle): it numbers
# its streams in the order of the TrackEntry elements it keeps, attachments after them all.
FFMPEG_TRACK_TYPES = {1, 2, 0x11}


def _vint(data, pos, keep_marker):
    """(value, next position) of the EBML variable-length integer at data[pos]."""
    first = data[pos]
    length = 9 - first.bit_length() if first else 9
    if length > 8 or pos + length > len(data):
        raise _Malformed("bad EBML number")
    value = int.from_bytes(data[pos:pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
        if value == (1 << (7 * length)) - 1:
            value = None  # unknown size
    return value, pos + length


def _header(data, pos):
    element, pos = _vint(data, pos, True)
    size, pos = _vint(data, pos, False)
    return element, size, pos


def elements(data, start=0, end=None):
    """(id, payload start, payload end) of the EBML elements in data[start:end] (pure)."""
    end = len(data) if end is None else end
    while start < end:
        element, size, start = _header(data, start)
        if size is None or start + size > end:
            raise _Malformed("EBML element overruns its parent")
        yield element, start, start + size
        start += size


def _uint(data, start, end):
    return int.from_bytes(data[start:end], "big")


def _children(data, start, end, wanted):
    """{id: payload bytes} of the first child of each id in `wanted`."""
    found = {}
    for element, s, e in elements(data, start, end):
        if element in wanted and element not in found:
            found[element] = data[s:e]
    return found


def track_number(tracks, stream_index):
    """The TrackNumber of FFmpeg's stream `stream_index` in a Tracks payload, None unless it is
    a video track at the same timescale as its file (pure)."""
    kept = []
    for element, s, e in elements(tracks):
        if element == TRACK_ENTRY:
            fields = _children(tracks, s, e, {TRACK_NUMBER, TRACK_TYPE, CODEC_ID, TRACK_TIMESTAMP_SCALE})
            if _uint(fields.get(TRACK_TYPE, b""), 0, 8) in FFMPEG_TRACK_TYPES and fields.get(CODEC_ID):
                kept.append(fields)
    if not 0 <= stream_index < len(kept):
        return None
    fields = kept[stream_index]
    scale = fields.get(TRACK_TIMESTAMP_SCALE)  # deprecated; FFmpeg would scale the blocks' times by it
    if scale and struct.unpack(">d" if len(scale) == 8 else ">f", scale)[0] != 1:
        return None
    if _uint(fields.get(TRACK_TYPE, b""), 0, 8) != 1:
        return None
    return _uint(fields.get(TRACK_NUMBER, b""), 0, 8) or None


def cue_times(cues, track, timestamp_scale):
    """Sorted seconds of the cue points of `track` in a Cues payload (pure)."""
    ticks = set()
    for element, s, e in elements(cues):
        if element != CUE_POINT:
            continue
        time, ours = None, False
        for child, cs, ce in elements(cues, s, e):
            if child == CUE_TIME:
                time = _uint(cues, cs, ce)
            elif child == CUE_TRACK_POSITIONS:
                ours = ours or _uint(_children(cues, cs, ce, {CUE_TRACK}).get(CUE_TRACK, b""), 0, 8) == track
        if ours and time is not None:
            ticks.add(time)
    return tuple(float(Fraction(t * timestamp_scale, 10 ** 9)) for t in sorted(ticks))


def _read_element(f, pos, size_limit, file_size):
    """(id, payload) of the element at `pos` in the file, its size checked."""
    f.seek(pos)
    head = f.read(12)
    element, size, start = _header(head, 0)
    if size is None or size > size_limit or pos + start + size > file_size:
        raise _Malformed("element too large or past the end of the file")
    return element, size, pos + start


def matroska(f, stream_index):
    """Keyframes from a Matroska file's Cues, found through its SeekHead; None without them."""
    file_size = os.fstat(f.fileno()).st_size
    _, size, pos = _read_element(f, 0, 4096, file_size)  # the EBML header
    f.seek(pos + size)
    element, segment_size, start = _header(f.read(12), 0)
    if element != SEGMENT:
        return None
    segment = pos + size + start
    size = segment_size
    segment_end = file_size if size is None else min(file_size, segment + size)
    where, wanted, heads = {}, (INFO, TRACKS, CUES), []
    pos = segment
    for _ in range(MAX_TOP_LEVEL):  # the elements before the first Cluster
        if pos >= segment_end:
            break
        f.seek(pos)
        element, size, start = _header(f.read(12), 0)
        if element == CLUSTER or size is None or pos + start + size > segment_end:
            break
        start += pos
        if element in wanted or element == SEEK_HEAD:
            where.setdefault(element, pos) if element != SEEK_HEAD else heads.append(pos)
        pos = start + size
    for _ in range(4):  # a SeekHead may name another (mkvmerge's at the end of the file)
        if not heads:
            break
        _, size, start = _read_element(f, heads.pop(0), MAX_READ, file_size)
        f.seek(start)
        seek_head = f.read(size)
        for element, s, e in elements(seek_head):
            if element == SEEK:
                fields = _children(seek_head, s, e, {SEEK_ID, SEEK_POSITION})
                target = _uint(fields.get(SEEK_ID, b""), 0, 4)
                at = segment + _uint(fields.get(SEEK_POSITION, b""), 0, 8)
                if target in wanted:
                    where.setdefault(target, at)
                elif target == SEEK_HEAD and at not in heads:
                    heads.append(at)
    if CUES not in where or TRACKS not in where:
        return None
    payload = {}
    for element in wanted:
        if element in where:
            found, size, start = _read_element(f, where[element], MAX_READ, file_size)
            if found != element:
                return None
            f.seek(start)
            payload[element] = f.read(size)
    scale = _uint(_children(payload.get(INFO, b""), 0, None, {TIMESTAMP_SCALE}).get(TIMESTAMP_SCALE, b""), 0, 8)
    track = track_number(payload[TRACKS], stream_index)
    times = track and cue_times(payload[CUES], track, scale or 1_000_000)
    return Keyframes(times, "cues") if times else None


# -- MP4 / MOV: ISO BMFF boxes (ISO/IEC 14496-12) -----------------------------------------------
def boxes(data, start=0, end=None):
    """(type, payload start, payload end) of the boxes in data[start:end] (pure)."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise _Malformed("box overruns its parent")
        yield kind, start + header, start + size
        start += size


def _box(data, start, end, *path):
    """(payload start, end) of the first box at `path` below data[start:end], else None."""
    for kind in path:
        found = next(((s, e) for k, s, e in boxes(data, start, end) if k == kind), None)
        if found is None:
            return None
        start, end = found
    return start, end


def _table(data, where, signed=False):
    """(counts, values) of a full box holding a 32-bit count and then pairs of 32-bit fields
    (stts, ctts); an array, not tuples: a film's ctts holds one pair per frame."""
    start, end = where
    count = struct.unpack_from(">I", data, start + 4)[0]
    if count * 8 > end - start - 8:
        raise _Malformed("table longer than its box")
    table = array.array("i" if signed else "I", data[start + 8:start + 8 + count * 8])
    if sys.byteorder == "little":
        table.byteswap()
    return table[0::2], table[1::2]


def _entries(data, where, fmt):
    """The entries of a small full box holding a 32-bit count and then `fmt` entries (stss, elst)."""
    start, end = where
    count, size = struct.unpack_from(">I", data, start + 4)[0], struct.calcsize(fmt)
    if count * size > end - start - 8:
        raise _Malformed("table longer than its box")
    return list(struct.iter_unpack(fmt, data[start + 8:start + 8 + count * size]))


def _timescale(data, where):
    """The timescale of an mvhd or mdhd box (after its version's creation/modification times)."""
    start, _ = where
    return struct.unpack_from(">I", data, start + (20 if data[start] == 1 else 12))[0]


def mp4(f, stream_index):
    """Keyframes from the moov box of a (non-fragmented) MP4 or MOV file; None without one."""
    file_size = os.fstat(f.fileno()).st_size
    pos = 0
    for _ in range(MAX_TOP_LEVEL):  # top-level boxes, seeking past mdat
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return None
        size, kind = struct.unpack_from(">I4s", head)
        if size == 1:
            size = struct.unpack_from(">Q", head, 8)[0]
        elif size == 0:
            size = file_size - pos
        if size < 8 or pos + size > file_size:
            return None
        if kind == b"moof":
            return None  # fragmented: its samples are in the fragments (not read here yet)
        if kind == b"moov":
            if size > MAX_READ:
                return None
            f.seek(pos)
            return moov_keyframes(f.read(size), stream_index)
        pos += size
    return None


def moov_keyframes(moov, stream_index):
    """Keyframes of the `stream_index`th trak of a moov box (pure): None unless it is video."""
    top = _box(moov, 0, len(moov), b"moov")
    if top is None or _box(moov, *top, b"mvex"):
        return None
    traks = [(s, e) for k, s, e in boxes(moov, *top) if k == b"trak"]
    mvhd = _box(moov, *top, b"mvhd")
    if not 0 <= stream_index < len(traks) or mvhd is None:
        return None
    trak = traks[stream_index]
    hdlr, mdhd = _box(moov, *trak, b"mdia", b"hdlr"), _box(moov, *trak, b"mdia", b"mdhd")
    stbl = _box(moov, *trak, b"mdia", b"minf", b"stbl")
    if not (hdlr and mdhd and stbl) or moov[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
        return None
    movie_scale, scale = _timescale(moov, mvhd), _timescale(moov, mdhd)
    stsz, stts = _box(moov, *stbl, b"stsz"), _box(moov, *stbl, b"stts")
    if not (stsz and stts and scale and movie_scale) or _box(moov, *stbl, b"stps"):
        return None  # stps: partial sync samples, which FFmpeg counts as keyframes too
    count = struct.unpack_from(">I", moov, stsz[0] + 8)[0]
    runs, deltas = _table(moov, stts)
    if not 0 < count <= MAX_SAMPLES or sum(runs) != count or min(deltas) == 0 or max(deltas) > 0xFFFFFFFF - 10:
        return None  # FFmpeg clips such deltas to 1, rewriting the times after them
    dts = list(itertools.accumulate(_expand(runs, deltas), initial=0))
    where = _box(moov, *stbl, b"ctts")
    runs, offsets = _table(moov, where, signed=True) if where else ((), ())
    if offsets and (sum(runs) != count or max(map(abs, offsets)) >= 1 << 28):
        return None  # FFmpeg ignores a ctts with such offsets
    cts = list(map(operator.add, dts, _expand(runs, offsets))) if offsets else dts[:-1]
    where = _box(moov, *stbl, b"stss")
    if where is None:
        keys = range(count)
    else:
        numbers = [n for (n,) in _entries(moov, where, ">I")]
        base = 1 if numbers and numbers[0] > 0 else 0  # as FFmpeg: a first entry of 0 means 0-based
        keys = [n - base for n in numbers]
        if not keys or keys[0] < 0 or keys[-1] >= count or any(map(operator.ge, keys, keys[1:])):
            return None
    edits = _box(moov, *trak, b"edts", b"elst")
    if edits is None:
        ticks = [cts[i] for i in keys]
    else:
        entries = _entries(moov, edits, ">QqI" if moov[edits[0]] == 1 else ">IiI")
        # FFmpeg's dts_shift: its most negative offset, the last two entries not counted
        shift = max([0, *(-d for d in offsets[:-2])])
        ticks = _edited(dts, cts, keys, entries, scale, movie_scale, shift, bool(offsets))
    return Keyframes(tuple(float(Fraction(t, scale)) for t in sorted(set(ticks))), "stss") if ticks else None


def _expand(runs, values):
    return itertools.chain.from_iterable(map(itertools.repeat, values, runs))


def _rescale(value, to_scale, from_scale):
    """av_rescale: rounded to the nearest, halves away from zero (values here are >= 0)."""
    return (value * to_scale + from_scale // 2) // from_scale


def _edited(dts, cts, keys, entries, scale, movie_scale, shift, has_offsets):
    """The keyframes' pts as FFmpeg's mov_fix_index gives them for an edit list of empty edits
    then one edit (the shape muxers write: a start delay, B-frames' delay); None for others.

    `dts`/`cts`: every sample's decode/composition time in the track's timescale, from 0.
    FFmpeg keeps the samples from the last keyframe at or before the edit's start to the second
    keyframe at its end (B-frames after the first may still show), times them from the first
    sample it shows (which gets the empty edits' duration), then moves them all so that the
    earliest shown is at that duration."""
    empty, edit = 0, None
    for duration, media_time, _ in entries:
        if edit is not None or media_time < -1:
            return None
        if media_time == -1:
            empty += _rescale(duration, scale, movie_scale)
        else:
            edit = (media_time, _rescale(duration, scale, movie_scale))
    if edit is None:
        return None
    start, end, n = edit[0], edit[0] + edit[1], len(cts)
    first = bisect.bisect_right(keys, bisect.bisect_right(dts, start, hi=n) - 1) - 1
    while first >= 0 and cts[keys[first]] > start:
        first -= 1
    if first < 0:
        return None
    last, stop, after = len(keys) - 1, n, False
    for k in range(first, len(keys)):  # keyframes only: the end is checked on them
        i = keys[k]
        if cts[i] + (dts[i + 1] - dts[i] if i + 1 < n else edit[1]) >= end:
            if has_offsets and not after:
                after = True
                continue
            last, stop = k, i + 1
            break
    shown = next((i for i in range(keys[first], stop) if start <= cts[i] < end), None)
    if shown is None:
        return None
    lowest = min(cts[shown:stop])
    if lowest < start:
        lowest = min(c for c in cts[shown:stop] if start <= c < end)
    if empty + cts[shown] - dts[shown] < 0 or empty + lowest - dts[shown] < 0:
        return None  # FFmpeg's "not yet set" is a negative value: it would take a later one
    zero = dts[shown] + max(0, lowest - dts[shown])
    return [cts[i] - zero + empty for i in keys[first:last + 1]]
