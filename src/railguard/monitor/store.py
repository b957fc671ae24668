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
DOWN alert still records the outage. Closed incidents go with the hourly rows of their time. An
incident that starts during a deploy window, or within ``deploy_grace`` after one, names that
deploy (``deploy_id``, ``deploy_note``: "during deploy 42 of ..." / "3 minutes after deploy 42 of ...").

The same file holds what other processes tell the monitor (:mod:`railguard.monitor.control`):
``deploy_windows`` (written by a deploy's steps) and ``pauses`` (``railguard monitor pause``).
Those writers open it with a short busy timeout through the functions at the end of this module
and touch only those two tables; the monitor reads them at the start of each round. Windows
that ended before the hourly history's horizon are dropped with the old hourly rows.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from railguard.errors import Busy, ConfigError, RailguardError
from railguard.monitor.control import CONTROL_BUSY_TIMEOUT, DeployWindow, Pause
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
CREATE TABLE IF NOT EXISTS deploy_windows (
    app TEXT NOT NULL,
    deploy_id INTEGER NOT NULL,
    git_hash TEXT,
    kind TEXT NOT NULL,
    opened_at REAL NOT NULL,
    until REAL NOT NULL,
    closed_at REAL,
    PRIMARY KEY (app, deploy_id)
);
CREATE TABLE IF NOT EXISTS pauses (
    name TEXT PRIMARY KEY,
    since REAL NOT NULL,
    until REAL,
    reason TEXT
);
"""

#: Columns added to a table after its first release: (table, column, declaration). A store
#: opened on an older file adds them (in one immediate transaction, so two processes opening the
#: file at once do not both try).
_ADDED_COLUMNS = (
    ("incidents", "deploy_id", "INTEGER"),
    ("incidents", "deploy_note", "TEXT"),
)


@dataclass(frozen=True)
class Incident:
    """One outage: DOWN from ``started_at``, RECOVERED at ``ended_at`` (None: still down)."""

    target: str
    started_at: datetime
    ended_at: datetime | None
    reason: str
    #: The deploy it came with (during its window, or within ``deploy_grace`` after), and how.
    deploy_id: int | None = None
    deploy_note: str | None = None

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
    def __init__(self, path: Path, *, busy_timeout: timedelta = timedelta(seconds=10)) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=busy_timeout.total_seconds(), check_same_thread=False,
                                   isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._add_columns()
        except BaseException:
            self._db.close()
            raise

    def _add_columns(self) -> None:
        if not self._missing_columns():  # the usual case: no write lock taken to find that out
            return
        with self._transaction():
            for table, column, declaration in self._missing_columns():
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def _missing_columns(self) -> list[tuple[str, str, str]]:
        present = {table: {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                   for table in {table for table, _, _ in _ADDED_COLUMNS}}
        return [added for added in _ADDED_COLUMNS if added[1] not in present[added[0]]]

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> MonitorStore:
        return cls(state_dir / FILE_NAME)

    def close(self) -> None:
        self._db.close()

    def states(self) -> dict[str, tuple[str, TargetState]]:
        """name -> (url, state) for every target ever checked."""
        return {name: (url, TargetState.from_dict(json.loads(state)))
                for name, url, state in self._db.execute("SELECT name, url, state FROM targets")}

    def record(self, rows: Iterable[tuple[str, str, CheckResult, TargetState]],
               deploys: Mapping[str, tuple[int, str]] | None = None) -> None:
        """One round: each target's check and new state, in one transaction. ``deploys``: the
        targets that checked during a deploy window or just after one, with the deploy's id and
        how an incident that starts now names it ("during deploy 42 of ...")."""
        rows = list(rows)
        deploys = deploys or {}
        with self._transaction():
            before = {name: TargetState.from_dict(json.loads(state)).status
                      for name, state in self._db.execute("SELECT name, state FROM targets")}
            for name, _, _, state in rows:  # one batch may hold several rounds of one target
                self._note_incident(name, before.get(name), state, deploys.get(name))
                before[name] = state.status
            self._db.executemany(
                "INSERT INTO checks(target, at, ok, response_time, reason) VALUES (?, ?, ?, ?, ?)",
                [(name, check.at.timestamp(), int(check.ok), check.response_time, check.reason or None)
                 for name, _, check, _ in rows])
            self._db.executemany(
                "INSERT INTO targets(name, url, state) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET url = excluded.url, state = excluded.state",
                [(name, url, json.dumps(state.to_dict())) for name, url, _, state in rows])

    def _note_incident(self, name: str, before: str | None, state: TargetState,
                       deploy: tuple[int, str] | None) -> None:
        if state.status == DOWN and before != DOWN and state.down_since is not None:
            deploy_id, note = deploy if deploy is not None else (None, None)
            self._db.execute("INSERT INTO incidents(target, started_at, reason, deploy_id, deploy_note)"
                             " VALUES (?, ?, ?, ?, ?)",
                             (name, state.down_since.timestamp(), state.last_failure_reason or None, deploy_id, note))
        elif before == DOWN and state.status == UP:
            ended = state.streak_started_at or state.last_check_at
            assert ended is not None
            self._db.execute("UPDATE incidents SET ended_at = ? WHERE id = (SELECT MAX(id) FROM incidents"
                             " WHERE target = ? AND ended_at IS NULL)", (ended.timestamp(), name))

    def incidents(self, target: str, since: datetime) -> list[Incident]:
        """The outages of ``target`` still going on or ended after ``since``, oldest first."""
        rows = self._db.execute(
            "SELECT started_at, ended_at, reason, deploy_id, deploy_note FROM incidents WHERE target = ?"
            " AND (ended_at IS NULL OR ended_at >= ?) ORDER BY started_at", (target, since.timestamp()))
        return [Incident(target, _utc(started), None if ended is None else _utc(ended), reason or "", deploy_id, note)
                for started, ended, reason, deploy_id, note in rows]

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
            self._db.execute("DELETE FROM deploy_windows WHERE MIN(COALESCE(closed_at, until), until) < ?",
                             (_hour_floor(now - hourly_history),))
            self._db.execute("DELETE FROM pauses WHERE until IS NOT NULL AND until < ?", (now.timestamp(),))
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

    # --- what other processes tell the monitor (railguard.monitor.control) -----------------------

    def open_deploy_window(self, window: DeployWindow) -> None:
        """Record ``window`` (a deploy id seen again, such as a retried step, replaces its row)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO deploy_windows(app, deploy_id, git_hash, kind, opened_at, until, closed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT(app, deploy_id) DO UPDATE SET"
                " git_hash = excluded.git_hash, kind = excluded.kind, opened_at = excluded.opened_at,"
                " until = excluded.until, closed_at = NULL",
                (window.app, window.deploy_id, window.commit, window.kind, window.opened_at.timestamp(),
                 window.until.timestamp()))

    def close_deploy_window(self, app: str, deploy_id: int, at: datetime) -> DeployWindow | None:
        """Close the window of deploy ``deploy_id`` of ``app`` at ``at``; None when it was never opened."""
        with self._transaction():
            self._db.execute("UPDATE deploy_windows SET closed_at = ? WHERE app = ? AND deploy_id = ?"
                             " AND closed_at IS NULL", (at.timestamp(), app, deploy_id))
            rows = self._db.execute(_WINDOW_COLUMNS + " WHERE app = ? AND deploy_id = ?", (app, deploy_id)).fetchall()
        return _window(rows[0]) if rows else None

    def forget_deploy_window(self, app: str, deploy_id: int) -> None:
        """Drop the window of a deploy that never went live (it failed at the platform): nothing
        of it holds alerts any more, and no later DOWN names it."""
        with self._transaction():
            self._db.execute("DELETE FROM deploy_windows WHERE app = ? AND deploy_id = ?", (app, deploy_id))

    def deploy_windows(self, since: datetime) -> list[DeployWindow]:
        """The windows that end (closed, or run out) at ``since`` or later, oldest first."""
        rows = self._db.execute(_WINDOW_COLUMNS + " WHERE MIN(COALESCE(closed_at, until), until) >= ?"
                                " ORDER BY opened_at", (since.timestamp(),))
        return [_window(row) for row in rows]

    def pause(self, pause: Pause) -> None:
        """Pause ``pause.name`` (a second pause of one name replaces the first)."""
        with self._transaction():
            self._db.execute("INSERT INTO pauses(name, since, until, reason) VALUES (?, ?, ?, ?) ON CONFLICT(name)"
                             " DO UPDATE SET since = excluded.since, until = excluded.until, reason = excluded.reason",
                             (pause.name, pause.since.timestamp(),
                              None if pause.until is None else pause.until.timestamp(), pause.reason))

    def resume(self, name: str, now: datetime) -> Pause | None:
        """End the pause of ``name``; the pause that was in force at ``now``, or None."""
        with self._transaction():
            found = [pause for pause in self._pauses("WHERE name = ?", (name,)) if pause.is_active(now)]
            self._db.execute("DELETE FROM pauses WHERE name = ?", (name,))
        return found[0] if found else None

    def pauses(self, now: datetime) -> list[Pause]:
        """The pauses in force at ``now``."""
        return [pause for pause in self._pauses("", ()) if pause.is_active(now)]

    def _pauses(self, where: str, parameters: tuple[object, ...]) -> list[Pause]:
        rows = self._db.execute(f"SELECT name, since, until, reason FROM pauses {where} ORDER BY name", parameters)
        return [Pause(name, _utc(since), None if until is None else _utc(until), reason)
                for name, since, until, reason in rows]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


_WINDOW_COLUMNS = "SELECT app, deploy_id, git_hash, kind, opened_at, until, closed_at FROM deploy_windows"


def _window(row: tuple[Any, ...]) -> DeployWindow:
    app, deploy_id, git_hash, kind, opened_at, until, closed_at = row
    return DeployWindow(app, deploy_id, git_hash, kind, _utc(opened_at), _utc(until),
                        None if closed_at is None else _utc(closed_at))


def _utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, timezone.utc)


def _hour_floor(moment: datetime) -> int:
    stamp = int(moment.astimezone(timezone.utc).timestamp())
    return stamp - stamp % 3600


# --- the writers in other processes: a deploy's steps, ``railguard monitor pause`` ---------------

def open_deploy_window(state_dir: Path, app: str, deploy_id: int, commit: str | None, kind: str,
                       until: datetime, *, now: datetime) -> DeployWindow:
    """Hold the DOWN alerts of ``app``'s targets from ``now`` until the window is closed, at the
    latest until ``until`` (:mod:`railguard.monitor.control`)."""
    window = DeployWindow(app, deploy_id, commit, kind, now, until)
    with _control_store(state_dir, f"open the deploy window of {app}") as store:
        store.open_deploy_window(window)
    return window


def close_deploy_window(state_dir: Path, app: str, deploy_id: int, *, now: datetime) -> DeployWindow | None:
    """End the window of deploy ``deploy_id``: from ``now`` a DOWN is alerted again (and names
    the deploy for ``deploy_grace``). None when the window was never opened."""
    with _control_store(state_dir, f"close the deploy window of {app}") as store:
        return store.close_deploy_window(app, deploy_id, now)


def pause_target(state_dir: Path, name: str, *, now: datetime, until: datetime | None = None,
                 reason: str | None = None) -> Pause:
    """No alert for ``name`` (a target, or every target of an app) from ``now`` until ``until``,
    or until :func:`resume_target` when ``until`` is None."""
    pause = Pause(name, now, until, reason)
    with _control_store(state_dir, f"pause {name}") as store:
        store.pause(pause)
    return pause


def resume_target(state_dir: Path, name: str, *, now: datetime) -> Pause | None:
    """End the pause of ``name``: the pause that was in force, or None when there was none."""
    with _control_store(state_dir, f"resume {name}") as store:
        return store.resume(name, now)


@contextlib.contextmanager
def _control_store(state_dir: Path, what: str) -> Iterator[MonitorStore]:
    """The monitor's file for a short write from another process (no monitor lock: the monitor
    may be running; SQLite's own locking orders the writes), its errors as railguard's."""
    try:
        store = MonitorStore(state_dir / FILE_NAME, busy_timeout=CONTROL_BUSY_TIMEOUT)
    except OSError as exc:
        raise ConfigError(f"cannot {what}: cannot create {state_dir} ({exc.strerror or exc})",
                          hint="Set state_dir in railguard.toml to a directory railguard may write") from exc
    except sqlite3.Error as exc:
        raise _store_error(what, state_dir, exc) from exc
    try:
        yield store
    except sqlite3.Error as exc:
        raise _store_error(what, state_dir, exc) from exc
    finally:
        store.close()


def _store_error(what: str, state_dir: Path, exc: sqlite3.Error) -> RailguardError:
    if "locked" in str(exc) or "busy" in str(exc):
        return Busy(f"cannot {what}: the monitor's state {state_dir / FILE_NAME} stayed busy "
                    f"for {CONTROL_BUSY_TIMEOUT.total_seconds():g}s",
                    hint="Try again; if it stays busy, look for a stuck process holding the file")
    return RailguardError(f"cannot {what}: the monitor's state {state_dir / FILE_NAME}: {exc}",
                          hint="Check that state_dir is writable by this user and the file is not damaged")
