"""Spool: heartbeats kept on disk while the orchestrator is unreachable, replayed in order.

One JSON file per record, named by a sequence number, written by rename (a crash leaves whole
records only), so the spool survives a restart of the worker. It is bounded: past `max_records`
the oldest record is dropped and counted; the count is kept on disk with the records and reported
until the spool has been delivered.
"""
import json
import logging
import os
import re
import threading
from collections import deque

log = logging.getLogger(__name__)

_RECORD = re.compile(r"^(\d{12})\.json$")
DROPPED_FILE = "dropped"


class Spool:
    def __init__(self, folder, max_records):
        self.folder = folder
        self.max_records = max_records
        os.makedirs(folder, exist_ok=True)
        self._lock = threading.Lock()
        names = sorted(n for n in os.listdir(folder) if _RECORD.match(n))
        self._names = deque(names)
        self._next = int(_RECORD.match(names[-1]).group(1)) + 1 if names else 0
        self.dropped = self._read_dropped()
        for leftover in (n for n in os.listdir(folder) if n.endswith(".tmp")):
            os.unlink(os.path.join(folder, leftover))  # a write cut short by a crash
        if names:
            log.info("spool: %d record(s) from an earlier run wait for the orchestrator", len(names))

    def __len__(self):
        with self._lock:
            return len(self._names)

    def append(self, record):
        """Keep `record` (a JSON-able dict); drop the oldest past the bound."""
        with self._lock:
            name = f"{self._next:012d}.json"
            self._next += 1
            path = os.path.join(self.folder, name)
            with open(path + ".tmp", "w", encoding="utf-8") as fh:
                json.dump(record, fh)
            os.replace(path + ".tmp", path)
            self._names.append(name)
            while len(self._names) > self.max_records:
                self._unlink(self._names.popleft())
                self.dropped += 1
                self._write_dropped()

    def oldest(self):
        """(name, record) of the oldest record, or None when empty. Unreadable records are dropped."""
        with self._lock:
            while self._names:
                name = self._names[0]
                try:
                    with open(os.path.join(self.folder, name), encoding="utf-8") as fh:
                        return name, json.load(fh)
                except (OSError, ValueError) as exc:
                    log.warning("spool: dropping unreadable record %s (%s)", name, exc)
                    self._names.popleft()
                    self._unlink(name)
                    self.dropped += 1
            return None

    def remove(self, name):
        """Forget a delivered record; when the spool is empty, the dropped count starts again."""
        with self._lock:
            if self._names and self._names[0] == name:
                self._names.popleft()
            elif name in self._names:
                self._names.remove(name)
            self._unlink(name)
            if not self._names and self.dropped:
                log.info("spool delivered; %d older record(s) had been dropped to keep it bounded", self.dropped)
                self.dropped = 0
                self._write_dropped()

    def _unlink(self, name):
        try:
            os.unlink(os.path.join(self.folder, name))
        except FileNotFoundError:
            pass

    def _read_dropped(self):
        try:
            with open(os.path.join(self.folder, DROPPED_FILE), encoding="utf-8") as fh:
                return int(fh.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _write_dropped(self):
        path = os.path.join(self.folder, DROPPED_FILE)
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(str(self.dropped))
        os.replace(path + ".tmp", path)
