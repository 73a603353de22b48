"""The fine-tuning API's state: files, jobs and events in one SQLite database (WAL) in the state folder.

    store = Store(Path("runs/server"))
    f = store.add_file("qa.jsonl", "fine-tune", path, size)        # the row; ids are OpenAI-like
    job = store.add_job({...})                                     # status validating_files
    store.event(job["id"], "Training started", key="stage:train")  # a key is written once, ever

Every write is one transaction, so a server killed at any moment leaves either the old or the new row.
Events carry an optional unique `key`: the runner replays a job's metrics file after a restart, and a
step already recorded is not recorded twice.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, filename TEXT NOT NULL,
    purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created_at INTEGER NOT NULL,
    status TEXT NOT NULL, request TEXT NOT NULL, started_at INTEGER, finished_at INTEGER, fine_tuned_model TEXT,
    served INTEGER NOT NULL DEFAULT 0, trained_tokens INTEGER, estimated_finish INTEGER, result_files TEXT NOT NULL DEFAULT '[]',
    error TEXT, extra TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL, type TEXT NOT NULL, data TEXT, key TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS events_key ON events (job_id, key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, seq);
"""
ACTIVE = ("validating_files", "queued", "running", "paused")  # a file such a job reads cannot be deleted
FINAL = ("succeeded", "failed", "cancelled")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.root / "luyen.db", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a row the API answered with survives a power cut
        self.db.executescript(SCHEMA)

    def _write(self, sql: str, args=()) -> sqlite3.Cursor:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = self.db.execute(sql, args)
                self.db.execute("COMMIT")
                return cur
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args=()) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, args).fetchall()]

    def run_folder(self, job_id: str) -> Path:
        """The job's `luyen run` folder (data/, train/, eval/): `luyen eval` and `luyen export` work on it."""
        return self.root / "runs" / job_id

    def job_folder(self, job_id: str) -> Path:
        """The job's own files: config.yaml (what it runs), log.txt, error.json, results.csv."""
        return self.root / "jobs" / job_id

    # files
    def add_file(self, filename: str, purpose: str, path: Path, size: int, file_id: str | None = None) -> dict:
        file_id = file_id or new_id("file")
        self._write("INSERT INTO files (id, filename, purpose, bytes, created_at, path) VALUES (?,?,?,?,?,?)",
                    (file_id, filename, purpose, size, int(time.time()), str(path)))
        return self.file(file_id)

    def file(self, file_id: str) -> dict | None:
        rows = self._read("SELECT * FROM files WHERE id = ?", (file_id,))
        return rows[0] if rows else None

    def files(self, purpose: str | None = None) -> list[dict]:
        if purpose:
            return self._read("SELECT * FROM files WHERE purpose = ? ORDER BY seq DESC", (purpose,))
        return self._read("SELECT * FROM files ORDER BY seq DESC")

    def delete_file(self, file_id: str) -> None:
        self._write("DELETE FROM files WHERE id = ?", (file_id,))

    def jobs_using(self, file_id: str) -> list[str]:
        rows = self._read(f"SELECT id, request FROM jobs WHERE status IN ({','.join('?' * len(ACTIVE))})", ACTIVE)
        reads = {r["id"]: json.loads(r["request"]) for r in rows}
        return [job for job, req in reads.items() if file_id in (req["training_file"], req.get("validation_file"))]

    # jobs
    def add_job(self, request: dict, extra: dict | None = None) -> dict:
        job_id = new_id("ftjob")
        self._write("INSERT INTO jobs (id, created_at, status, request, extra) VALUES (?,?,?,?,?)",
                    (job_id, int(time.time()), "validating_files", json.dumps(request), json.dumps(extra or {})))
        return self.job(job_id)

    def job(self, job_id: str) -> dict | None:
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs(self, status: tuple[str, ...] | None = None, after: str | None = None, limit: int = -1) -> list[dict]:
        """Newest first; ``after``: only jobs created before that job (OpenAI's cursor)."""
        sql, args = "SELECT * FROM jobs WHERE 1", []
        if status:
            sql += f" AND status IN ({','.join('?' * len(status))})"
            args += list(status)
        if after:
            sql += " AND seq < (SELECT seq FROM jobs WHERE id = ?)"
            args.append(after)
        return [_job(r) for r in self._read(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit))]

    def oldest(self, status: str) -> dict | None:
        rows = self._read("SELECT * FROM jobs WHERE status = ? ORDER BY seq LIMIT 1", (status,))
        return _job(rows[0]) if rows else None

    def update(self, job_id: str, *, when: tuple[str, ...] | None = None, **fields) -> bool:
        """Set fields (dicts and lists as JSON); with ``when``, only if the status is one of those.
        Returns whether the row changed: a cancel that raced the job's end changes nothing."""
        cols = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items()}
        sql = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?"
        args = [*cols.values(), job_id]
        if when:
            sql += f" AND status IN ({','.join('?' * len(when))})"
            args += list(when)
        return self._write(sql, args).rowcount == 1

    # events
    def event(self, job_id: str, message: str, *, level: str = "info", type: str = "message", data: dict | None = None,
              key: str | None = None, created_at: int | None = None) -> None:
        self._write("INSERT OR IGNORE INTO events (id, job_id, created_at, level, message, type, data, key) "
                    "VALUES (?,?,?,?,?,?,?,?)", (new_id("ftevent"), job_id, created_at or int(time.time()), level,
                                                 message, type, json.dumps(data) if data is not None else None, key))

    def has_event(self, job_id: str, key: str) -> bool:
        return bool(self._read("SELECT 1 FROM events WHERE job_id = ? AND key = ?", (job_id, key)))

    def events(self, job_id: str, after: str | None = None, limit: int = 20) -> list[dict]:
        """Newest first, as OpenAI lists them; ``after``: only events older than that one."""
        sql, args = "SELECT * FROM events WHERE job_id = ?", [job_id]
        if after:
            sql += " AND seq < (SELECT seq FROM events WHERE id = ?)"
            args.append(after)
        rows = self._read(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit))
        return [{**r, "data": json.loads(r["data"]) if r["data"] else None} for r in rows]


def _job(row) -> dict:
    job = dict(row)
    for key in ("request", "result_files", "extra"):
        job[key] = json.loads(job[key])
    job["error"] = json.loads(job["error"]) if job["error"] else None
    return job
