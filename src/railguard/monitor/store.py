"""The monitor's persistence: target states, raw checks, hourly aggregates, in one SQLite file.

Storage stays small on purpose (users of Uptime Kuma watch its history grow to gigabytes):
raw checks are kept for ``raw_history`` (48 h by default), then folded into one row per
target and hour, which are kept for ``hourly_history`` (35 days covers the 30-day uptime).
At 60 s intervals that is 2 880 raw rows plus 840 hourly rows per target at most.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from railguard.monitor.state import CheckResult, TargetState

FILE_NAME = "monitor.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS targets (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checks (
    target TEXT NOT NULL,
    at REAL NOT NULL,
    ok INTEGER NOT NULL,
    response_time REAL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS checks_by_time ON checks(at, target);
CREATE TABLE IF NOT EXISTS hourly (
    target TEXT NOT NULL,
    hour INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    response_time_sum REAL NOT NULL,
    PRIMARY KEY (target, hour)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Uptime:
    checks: int
    failures: int

    @property
    def ratio(self) -> float | None:
        return (self.checks - self.failures) / self.checks if self.checks else None


class MonitorStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> MonitorStore:
        return cls(state_dir / FILE_NAME)

    def close(self) -> None:
        self._db.close()

    def states(self) -> dict[str, tuple[str, TargetState]]:
        """name -> (url, state) for every target ever checked."""
        return {name: (url, TargetState.from_dict(json.loads(state)))
                for name, url, state in self._db.execute("SELECT name, url, state FROM targets")}

    def record(self, rows: Iterable[tuple[str, str, CheckResult, TargetState]]) -> None:
        """One round: each target's check and new state, in one transaction."""
        rows = list(rows)
        with self._transaction():
            self._db.executemany(
                "INSERT INTO checks(target, at, ok, response_time, reason) VALUES (?, ?, ?, ?, ?)",
                [(name, check.at.timestamp(), int(check.ok), check.response_time, check.reason or None)
                 for name, _, check, _ in rows])
            self._db.executemany(
                "INSERT INTO targets(name, url, state) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET url = excluded.url, state = excluded.state",
                [(name, url, json.dumps(state.to_dict())) for name, url, _, state in rows])

    def save_state(self, name: str, url: str, state: TargetState) -> None:
        with self._transaction():
            self._db.execute("INSERT INTO targets(name, url, state) VALUES (?, ?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET url = excluded.url, state = excluded.state",
                             (name, url, json.dumps(state.to_dict())))

    def compact(self, now: datetime, raw_history: timedelta, hourly_history: timedelta) -> int:
        """Fold raw checks older than ``raw_history`` (whole hours only) into hourly rows;
        drop hourly rows older than ``hourly_history``. Returns the raw rows folded."""
        cutoff = _hour_floor(now - raw_history)
        with self._transaction():
            self._db.execute(
                """INSERT INTO hourly(target, hour, checks, failures, response_time_sum)
                   SELECT target, CAST(at / 3600 AS INTEGER) * 3600, COUNT(*), SUM(1 - ok),
                          COALESCE(SUM(response_time), 0)
                   FROM checks WHERE at < ? GROUP BY target, CAST(at / 3600 AS INTEGER)
                   ON CONFLICT(target, hour) DO UPDATE SET checks = checks + excluded.checks,
                       failures = failures + excluded.failures,
                       response_time_sum = response_time_sum + excluded.response_time_sum""",
                (cutoff,))
            folded = self._db.execute("DELETE FROM checks WHERE at < ?", (cutoff,)).rowcount
            self._db.execute("DELETE FROM hourly WHERE hour < ?", (_hour_floor(now - hourly_history),))
        return folded

    def uptime(self, target: str, since: datetime) -> Uptime:
        """Checks and failures since ``since``: hourly rows from its hour on, plus raw checks."""
        start = since.timestamp()
        checks, failures = self._db.execute(
            "SELECT COALESCE(SUM(checks), 0), COALESCE(SUM(failures), 0) FROM hourly WHERE target = ? AND hour >= ?",
            (target, _hour_floor(since))).fetchone()
        raw_checks, raw_failures = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(1 - ok), 0) FROM checks WHERE target = ? AND at >= ?",
            (target, start)).fetchone()
        return Uptime(checks + raw_checks, failures + raw_failures)

    def counts(self) -> tuple[int, int]:
        """(raw rows, hourly rows): what the bound on storage is about."""
        raw = self._db.execute("SELECT COUNT(*) FROM checks").fetchone()[0]
        hourly = self._db.execute("SELECT COUNT(*) FROM hourly").fetchone()[0]
        return raw, hourly

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _hour_floor(moment: datetime) -> int:
    stamp = int(moment.astimezone(timezone.utc).timestamp())
    return stamp - stamp % 3600
