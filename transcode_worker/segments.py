"""Which segments of a job are complete, and how a run's segments become servable.

A run of FFmpeg writes into its own staging folder (hls_names.staging) and lists each segment in
its segment list once it is complete. Collector reads that list and moves each listed segment into
the job's folder by a rename, so a file there is always whole, whoever serves it (the app, or
nginx alone); an fMP4 segment loses its own header on the way (every run's header is the same: it
becomes the job's one init segment). Made is the job's record, kept across its runs: what is
made stays (seeking back costs nothing) until the job is deleted.
"""
import logging
import os
import re
import shutil
import struct
import threading

log = logging.getLogger(__name__)

COPY_CHUNK = 1 << 20  # an fMP4 segment is copied into place a mebibyte at a time


class Made:
    """The numbers of a job's complete segments (shared by all its runs), with their sizes."""

    def __init__(self):
        self._numbers = set()
        self._sizes = {}
        self._lock = threading.Lock()

    def add(self, number, size=0):
        with self._lock:
            self._numbers.add(number)
            self._sizes[number] = size

    def discard(self, number):
        with self._lock:
            self._numbers.discard(number)
            self._sizes.pop(number, None)

    @property
    def bytes(self):
        with self._lock:
            return sum(self._sizes.values())

    def sizes(self):
        with self._lock:
            return dict(self._sizes)

    def __contains__(self, number):
        with self._lock:
            return number in self._numbers

    def __len__(self):
        with self._lock:
            return len(self._numbers)

    def run_end(self, number):
        """The last number of the unbroken run of made segments from `number` (number - 1 when
        `number` itself is not made)."""
        with self._lock:
            while number in self._numbers:
                number += 1
        return number - 1


def moof_offset(fh):
    """Where the first moof box of an MP4 file starts: its header (ftyp+moov) is what comes before,
    its media (moof+mdat) the rest. Reads box headers only, not the media."""
    offset = 0
    while True:
        fh.seek(offset)
        head = fh.read(16)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head[:8])
        if size == 1 and len(head) == 16:
            size = struct.unpack(">Q", head[8:16])[0]
        if kind == b"moof":
            return offset
        if size < 8:
            break
        offset += size
    raise ValueError("no moof box in the segment FFmpeg wrote")


def write_atomically(path, data):
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as fh:
        fh.write(data)
    os.replace(temporary, path)


def copy_atomically(path, source):
    """The rest of file object `source`, from where it is, as the file `path` (whole or absent)."""
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as fh:
        shutil.copyfileobj(source, fh, COPY_CHUNK)
    os.replace(temporary, path)


def to_remove(sizes, watched, limit_bytes, number_of=lambda key: key):
    """Which made segments go when a job keeps more than limit_bytes ({key: bytes} made, the
    segment its viewer is at; number_of(key): the segment's number, where a key names the video's
    or a rendition's): the furthest from the viewer first (behind before ahead at the same
    distance), down to nine tenths of the limit, never the viewer's segment nor the next."""
    total = sum(sizes.values())
    if not limit_bytes or total <= limit_bytes:
        return []
    order = sorted((key for key in sizes if not watched <= number_of(key) <= watched + 1),
                   key=lambda key: (abs(number_of(key) - watched), number_of(key) < watched), reverse=True)
    chosen = []
    for number in order:
        if total <= limit_bytes * 0.9:
            break
        chosen.append(number)
        total -= sizes[number]
    return chosen


class Collector:
    """Moves one run's complete segments (its list says which) into the job's folder and records
    them; collect() is called by whoever wants to know first (the run's supervisor on every
    progress report, a player's request while it waits), so a segment is served as soon as it is
    listed."""

    def __init__(self, folder, output, made, on_made=None):
        self.folder = folder
        self.output = output
        self.made = made
        self.on_made = on_made  # on_made(number), after the segment is in place
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()
        self._abandoned = False
        self._error = None  # the last error reading the list (said once)
        self._name = re.compile(rf"{re.escape(output.job_id)}_(\d+)\.(?:ts|mp4)")

    @property
    def staging(self):
        return os.path.join(self.folder, self.output.staging)

    def prepare(self):
        """The run's staging folder, empty, before FFmpeg starts."""
        shutil.rmtree(self.staging, ignore_errors=True)
        os.makedirs(self.staging)

    def collect(self):
        """Move what the run's list newly names into place; returns their numbers."""
        with self._lock:
            if self._abandoned:
                return []
            try:
                with open(os.path.join(self.folder, self.output.segment_list), "rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read()
            except FileNotFoundError:
                return []
            except OSError as exc:  # EIO, ESTALE, ELOOP: tried again at the next call
                if str(exc) != self._error:
                    log.warning("job %s: the run's list of segments cannot be read: %s", self.output.job_id,
                                exc, extra={"job_id": self.output.job_id})
                self._error = str(exc)
                return []
            self._error = None
            self._offset += len(data)
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            numbers = []
            for line in lines:
                match = self._name.fullmatch(line.split(b",")[0].decode(errors="replace").strip())
                if match and self._promote(int(match.group(1))):
                    numbers.append(int(match.group(1)))
        for number in numbers:
            if self.on_made is not None:
                self.on_made(number)
        return numbers

    def _promote(self, number):
        staged = os.path.join(self.staging, self.output.staged(number))
        target = os.path.join(self.folder, self.output.segment(number))
        try:
            if self.output.fmp4:
                with open(staged, "rb") as fh:  # (a segment is megabytes: streamed, never held whole)
                    offset = moof_offset(fh)
                    init = os.path.join(self.folder, self.output.init_segment)
                    if not os.path.exists(init):
                        fh.seek(0)
                        write_atomically(init, fh.read(offset))
                    fh.seek(offset)
                    copy_atomically(target, fh)
                os.unlink(staged)
            else:
                os.replace(staged, target)
        except (OSError, ValueError) as exc:
            log.warning("job %s: segment %d cannot be put in place: %s", self.output.job_id, number, exc,
                        extra={"job_id": self.output.job_id})
            return False
        try:
            size = os.path.getsize(target)
        except OSError:
            size = 0
        self.made.add(number, size)
        return True

    def abandon(self):
        """The run is stopped and the job's next run may be writing already: put nothing more in
        place (a collect() under way ends first)."""
        with self._lock:
            self._abandoned = True

    def finish(self):
        """After the run's FFmpeg has exited: collect what it listed last, drop what it left half
        written."""
        self.collect()
        shutil.rmtree(self.staging, ignore_errors=True)
