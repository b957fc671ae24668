"""The daemon's memory: every job run, so a restart knows what was missed (SQLite, tiny)."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from railguard.durable import create_private_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    exit_code INTEGER,
    result TEXT NOT NULL,          -- running | ok | warning | failed | skipped | killed
    summary TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_job ON runs(job, started_at);
"""
#: Runs kept per job: enough for the status page and the metrics, bounded forever.
KEEP_PER_JOB = 500


@dataclass
class Run:
    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    exit_code: int | None
    result: str
    summary: str


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


class RunLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_private_database(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        # A run still marked running belongs to a daemon that died: it did not succeed.
        self._db.execute("UPDATE runs SET result = 'killed', summary = 'the daemon stopped during this run' "
                         "WHERE result = 'running'")

    def start(self, job: str, at: datetime) -> int:
        with self._lock:
            inserted = self._db.execute("INSERT INTO runs(job, started_at, result) VALUES (?, ?, 'running')",
                                        (job, _ts(at)))
        assert inserted.lastrowid is not None  # None only before a cursor's first INSERT
        return inserted.lastrowid

    def finish(self, run_id: int, at: datetime, exit_code: int | None, result: str, summary: str) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET finished_at = ?, exit_code = ?, result = ?, summary = ? WHERE id = ?",
                             (_ts(at), exit_code, result, summary, run_id))
            job = self._db.execute("SELECT job FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            self._db.execute("DELETE FROM runs WHERE job = ? AND id NOT IN "
                             "(SELECT id FROM runs WHERE job = ? ORDER BY id DESC LIMIT ?)",
                             (job, job, KEEP_PER_JOB))

    def skipped(self, job: str, at: datetime, reason: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO runs(job, started_at, finished_at, result, summary) "
                             "VALUES (?, ?, ?, 'skipped', ?)", (job, _ts(at), _ts(at), reason))

    def last_success(self, job: str) -> datetime | None:
        with self._lock:
            row = self._db.execute("SELECT max(started_at) FROM runs WHERE job = ? AND result IN ('ok', 'warning')",
                                   (job,)).fetchone()
        return _dt(row[0])

    def runs(self, job: str | None = None) -> list[Run]:
        query = "SELECT id, job, started_at, finished_at, exit_code, result, summary FROM runs"
        args: tuple[str, ...] = ()
        if job:
            query += " WHERE job = ?"
            args = (job,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        # started_at is NOT NULL (SCHEMA).
        return [Run(r[0], r[1], datetime.fromtimestamp(r[2], timezone.utc), _dt(r[3]), r[4], r[5], r[6]) for r in rows]

    def close(self) -> None:
        self._db.close()
