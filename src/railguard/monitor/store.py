"""The monitor's persistence: target states, raw checks, hourly aggregates, in one SQLite file.

Storage stays small on purpose (users of Uptime Kuma watch its history grow to gigabytes):
raw checks are kept for ``raw_history`` (48 h by default), then folded into one row per
target and hour, which are kept for ``hourly_history`` (35 days covers the 30-day uptime).
At 60 s intervals that is 2 880 raw rows plus 840 hourly rows per target at most.

Each outage is one row of ``incidents``, written by :meth:`MonitorStore.record` in the same
transaction as the check that changes the state: opened when a target turns DOWN (from the
first failed check of the streak, ``down_since``), closed when it turns UP again (at the first
successful check of the recovery streak, as :mod:`railguard.monitor.state` measures an outage).
The state machine is the one source of the transition, so a maintenance window that silences the
DOWN alert still records the outage. Closed incidents go with the hourly rows of their time.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from railguard.monitor.state import DOWN, UP, CheckResult, TargetState

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
-- One target's checks over a span (uptime, the status page's chart), without the other targets'.
CREATE INDEX IF NOT EXISTS checks_by_target ON checks(target, at);
CREATE TABLE IF NOT EXISTS hourly (
    target TEXT NOT NULL,
    hour INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    response_time_sum REAL NOT NULL,
    PRIMARY KEY (target, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS incidents_by_target ON incidents(target, started_at);
"""


@dataclass(frozen=True)
class Incident:
    """One outage: DOWN from ``started_at``, RECOVERED at ``ended_at`` (None: still down)."""

    target: str
    started_at: datetime
    ended_at: datetime | None
    reason: str

    def duration(self, now: datetime) -> timedelta:
        return (self.ended_at or now) - self.started_at


@dataclass(frozen=True)
class CheckPoint:
    """One check (or one hour of checks, averaged) for a response-time chart."""

    at: datetime
    ok: bool
    #: Seconds; None for a check that got no answer.
    response_time: float | None


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
            before = {name: TargetState.from_dict(json.loads(state)).status
                      for name, state in self._db.execute("SELECT name, state FROM targets")}
            for name, _, _, state in rows:  # one batch may hold several rounds of one target
                self._note_incident(name, before.get(name), state)
                before[name] = state.status
            self._db.executemany(
                "INSERT INTO checks(target, at, ok, response_time, reason) VALUES (?, ?, ?, ?, ?)",
                [(name, check.at.timestamp(), int(check.ok), check.response_time, check.reason or None)
                 for name, _, check, _ in rows])
            self._db.executemany(
                "INSERT INTO targets(name, url, state) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET url = excluded.url, state = excluded.state",
                [(name, url, json.dumps(state.to_dict())) for name, url, _, state in rows])

    def _note_incident(self, name: str, before: str | None, state: TargetState) -> None:
        if state.status == DOWN and before != DOWN and state.down_since is not None:
            self._db.execute("INSERT INTO incidents(target, started_at, reason) VALUES (?, ?, ?)",
                             (name, state.down_since.timestamp(), state.last_failure_reason or None))
        elif before == DOWN and state.status == UP:
            ended = state.streak_started_at or state.last_check_at
            assert ended is not None
            self._db.execute("UPDATE incidents SET ended_at = ? WHERE id = (SELECT MAX(id) FROM incidents"
                             " WHERE target = ? AND ended_at IS NULL)", (ended.timestamp(), name))

    def incidents(self, target: str, since: datetime) -> list[Incident]:
        """The outages of ``target`` still going on or ended after ``since``, oldest first."""
        rows = self._db.execute(
            "SELECT started_at, ended_at, reason FROM incidents WHERE target = ?"
            " AND (ended_at IS NULL OR ended_at >= ?) ORDER BY started_at", (target, since.timestamp()))
        return [Incident(target, _utc(started), None if ended is None else _utc(ended), reason or "")
                for started, ended, reason in rows]

    def checks(self, target: str, since: datetime, until: datetime, *, at_most: int | None = None) -> list[CheckPoint]:
        """Raw checks of ``target`` in [since, until), oldest first (as long as they are kept).

        ``at_most``: more checks than that are averaged, in SQLite, into that many equal slices
        of the span (each slice that has checks is one point at its start: the mean response
        time of its answers, ok when none of them failed), so a chart never carries thousands
        of points, and they are never all read into Python."""
        start, end = since.timestamp(), until.timestamp()
        count = self._db.execute("SELECT COUNT(*) FROM checks WHERE target = ? AND at >= ? AND at < ?",
                                 (target, start, end)).fetchone()[0]
        if at_most is None or count <= at_most:
            rows = self._db.execute("SELECT at, ok, response_time FROM checks WHERE target = ? AND at >= ? AND at < ?"
                                    " ORDER BY at", (target, start, end))
            return [CheckPoint(_utc(at), bool(ok), response_time) for at, ok, response_time in rows]
        width = (end - start) / at_most
        rows = self._db.execute(
            "SELECT MIN(?, CAST((at - ?) / ? AS INTEGER)) AS slice, MIN(ok), AVG(response_time) FROM checks"
            " WHERE target = ? AND at >= ? AND at < ? GROUP BY slice ORDER BY slice",
            (at_most - 1, start, width, target, start, end))
        return [CheckPoint(_utc(start + width * index), bool(ok), response_time) for index, ok, response_time in rows]

    def hours(self, target: str, since: datetime) -> list[CheckPoint]:
        """One point per hour since ``since`` from the hourly rows (mean response time; ok when
        no check of the hour failed), oldest first."""
        rows = self._db.execute("SELECT hour, checks, failures, response_time_sum FROM hourly"
                                " WHERE target = ? AND hour >= ? ORDER BY hour", (target, _hour_floor(since)))
        return [CheckPoint(_utc(hour), failures == 0, total / checks if checks else None)
                for hour, checks, failures, total in rows]

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
            self._db.execute("DELETE FROM incidents WHERE ended_at < ?", (_hour_floor(now - hourly_history),))
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


def _utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, timezone.utc)


def _hour_floor(moment: datetime) -> int:
    stamp = int(moment.astimezone(timezone.utc).timestamp())
    return stamp - stamp % 3600
