"""The orchestrator's state in one SQLite file (WAL mode): the pool, the jobs, and the steered
playlists players hold (what a restarted orchestrator still needs to steer them).

A restarted orchestrator keeps its knowledge. One connection, serialised by a lock: the load is a
heartbeat per worker every few seconds and a play request now and then.
"""
import json
import os
import sqlite3
import threading
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    static_specs TEXT NOT NULL,
    encoders TEXT NOT NULL,
    max_concurrent_jobs INTEGER NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    telemetry TEXT,
    active_jobs INTEGER NOT NULL DEFAULT 0,
    last_seen REAL NOT NULL,
    registered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    source_path TEXT NOT NULL,
    configuration TEXT NOT NULL,
    worker_id TEXT,
    state TEXT NOT NULL,
    progress REAL,
    position_s REAL NOT NULL DEFAULT 0,
    watched_s REAL,
    speed TEXT,
    last_segment_id INTEGER,
    playlist_url TEXT,
    error TEXT,
    requeues INTEGER NOT NULL DEFAULT 0,
    reported_at TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_worker ON jobs (worker_id);
CREATE TABLE IF NOT EXISTS streams (
    job_id TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (job_id, worker_id)
);
"""
JSON_COLUMNS = ("static_specs", "encoders", "telemetry", "configuration")
OFFLINE = "OFFLINE"
QUEUED = "QUEUED"  # a job waiting for a worker (its own was lost and none fitted yet)
PLACING = "PLACING"  # a new job while the play request looks for a worker


class Store:
    def __init__(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # the lock is held only while SQLite works on this local file, and SQLite waits for another
        # process's lock on it (a second orchestrator, the sqlite3 shell) 5 s at most
        self._db = sqlite3.connect(path, timeout=5.0, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "watched_s" not in columns:  # a database from before the column
                self._db.execute("ALTER TABLE jobs ADD COLUMN watched_s REAL")

    def close(self):
        with self._lock:
            self._db.close()

    def _rows(self, sql, args=()):
        with self._lock:
            return [_decode(row) for row in self._db.execute(sql, args).fetchall()]

    def _one(self, sql, args=()):
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def _write(self, sql, args=()):
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # -- workers ------------------------------------------------------------------------------
    def register_worker(self, reg, now=None):
        now = time.time() if now is None else now
        self._write(
            """INSERT INTO workers (id, url, static_specs, encoders, max_concurrent_jobs, version, status,
                                    reason, telemetry, active_jobs, last_seen, registered_at)
               VALUES (?, ?, ?, ?, ?, ?, 'IDLE', NULL, NULL, 0, ?, ?)
               ON CONFLICT(id) DO UPDATE SET url=excluded.url, static_specs=excluded.static_specs,
                   encoders=excluded.encoders, max_concurrent_jobs=excluded.max_concurrent_jobs,
                   version=excluded.version, status='IDLE', reason=NULL, active_jobs=0,
                   last_seen=excluded.last_seen, registered_at=excluded.registered_at""",
            (reg["id"], reg["url"], json.dumps(reg["static_specs"]), json.dumps(reg["encoders"]),
             reg["max_concurrent_jobs"], reg["version"], now, now))

    def worker(self, worker_id):
        return self._one("SELECT * FROM workers WHERE id = ?", (worker_id,))

    def workers(self):
        return self._rows("SELECT * FROM workers ORDER BY id")

    def record_heartbeat(self, worker_id, beat, now=None):
        now = time.time() if now is None else now
        self._write("UPDATE workers SET status=?, reason=?, telemetry=?, active_jobs=?, last_seen=? WHERE id=?",
                    (beat["status"], beat.get("reason"), json.dumps(beat["telemetry"]), beat["active_jobs"],
                     now, worker_id))

    def bump_active_jobs(self, worker_id):
        self._write("UPDATE workers SET active_jobs = active_jobs + 1 WHERE id = ?", (worker_id,))

    def set_offline(self, worker_id, reason):
        return self._write("UPDATE workers SET status=?, reason=?, active_jobs=0 WHERE id=? AND status != ?",
                           (OFFLINE, reason, worker_id, OFFLINE))

    # -- jobs ---------------------------------------------------------------------------------
    def add_job(self, job_id, source_path, configuration, now=None):
        now = time.time() if now is None else now
        self._write("""INSERT INTO jobs (id, source_path, configuration, state, created_at, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?)""", (job_id, source_path, json.dumps(configuration), PLACING, now, now))

    def job(self, job_id):
        return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def jobs(self, worker_id=None, states=None):
        sql, args = "SELECT * FROM jobs WHERE 1=1", []
        if worker_id is not None:
            sql += " AND worker_id = ?"
            args.append(worker_id)
        if states is not None:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        return self._rows(sql + " ORDER BY created_at", args)

    def update_job(self, job_id, **values):
        if "configuration" in values:
            values["configuration"] = json.dumps(values["configuration"])
        values["updated_at"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in values)
        return self._write(f"UPDATE jobs SET {columns} WHERE id = ?", (*values.values(), job_id))

    def delete_job(self, job_id):
        self._write("DELETE FROM streams WHERE job_id = ?", (job_id,))
        return self._write("DELETE FROM jobs WHERE id = ?", (job_id,))

    # -- the steered playlists players hold (steering.py) -------------------------------------
    def stream_text(self, job_id, worker_id):
        """The steered multivariant playlist of `job_id` made from `worker_id`'s, or None."""
        row = self._one("SELECT text FROM streams WHERE job_id = ? AND worker_id = ?", (job_id, worker_id))
        return row["text"] if row else None

    def keep_stream_text(self, job_id, worker_id, text):
        """Keep it (the first kept stays: a VOD stream's never changes); returns the one kept."""
        self._write("INSERT OR IGNORE INTO streams (job_id, worker_id, text) VALUES (?, ?, ?)",
                    (job_id, worker_id, text))
        return self.stream_text(job_id, worker_id)


def _decode(row):
    data = dict(row)
    for column in JSON_COLUMNS:
        if column in data and data[column] is not None:
            data[column] = json.loads(data[column])
    return data
