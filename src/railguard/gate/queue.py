"""The gate's persistent run queue: one SQLite file, shared by the HTTP handlers and the workers.

Rules it keeps (docs/gate.md):

* A delivery id is recorded once; the same ``X-Forgejo-Delivery`` again queues nothing.
* Forgejo's "Replay" button sends the same payload under a **new** delivery id
  (models/webhook/hooktask.go ``ReplayHookTask`` copies the task with a new UUID), so a webhook
  is also a duplicate when a run of the same app, ref and pushed ``after`` is queued, running or
  has its answer (:data:`ANSWERED`). A run that ended without one (``failed``, ``deploy_failed``,
  ``error``, ``interrupted``, ``superseded``) does not block it: pressing Replay there is a
  deliberate request to test that commit again, and it is queued.
* Newest wins: when a worker takes the next run of an app, it takes the newest queued one and
  marks every older queued run ``superseded`` (the newer push contains them).
* A run still ``running`` when the gate starts was interrupted by a restart: it is marked
  ``interrupted`` and a fresh run of the same commit is queued (unless newer work waits).

WAL with ``synchronous=NORMAL``: a crash of the gate loses nothing committed; a power loss may
lose the last deliveries, which the catch-up on start (``git ls-remote``) finds again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from railguard.config import Settings
from railguard.durable import create_private_database
from railguard.errors import ConfigError, NotFound

#: The queue's file in the gate's directory.
QUEUE_NAME = "queue.sqlite3"


def gate_directory(settings: Settings) -> Path:
    """Where the gate keeps its queue, mirrors and run logs: [gate] directory, else
    ``<state_dir>/gate``."""
    return settings.gate.directory or settings.state_dir / "gate"


def recent_runs(settings: Settings, *, limit: int = 50) -> list[Run]:
    """``railguard gate list``: the newest runs of the gate's queue, read locally (no running
    gate needed; the queue file is created, private, if the gate never ran)."""
    return RunQueue(gate_directory(settings) / QUEUE_NAME).list(limit=limit)

def runs_by_deploy(settings: Settings, app: str, deploy_ids: Iterable[int]) -> dict[int, Run]:
    """The gate's runs of ``app`` that made one of ``deploy_ids`` (ids of the deploy history,
    which the worker stores in ``runs.deploy_id``), by that id: for the status page's deploy
    list. Read only (``mode=ro``): the queue is never created, written or migrated here, and
    none when the gate never ran; a queue that cannot be read (an older or damaged file) gives
    none too, so the page shows the deploys without their runs rather than no page."""
    ids = sorted(set(deploy_ids))
    path = gate_directory(settings) / QUEUE_NAME
    if not ids or not path.exists():
        return {}
    placeholders = ", ".join("?" for _ in ids)
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(f"SELECT * FROM runs WHERE app = ? AND deploy_id IN ({placeholders}) ORDER BY id",
                              (app, *ids)).fetchall()
            runs = [_run(row) for row in rows]
    except (sqlite3.Error, KeyError, IndexError, ValueError):
        return {}
    # One deploy, one run: the newest that claims it, should two ever do.
    return {run.deploy_id: run for run in runs if run.deploy_id is not None}


def run_url(public_url: str, run_id: int) -> str:
    """A run's page on the gate (``GET /runs/{id}``), under the gate's address ``public_url``."""
    return f"{public_url.rstrip('/')}/runs/{run_id}"


Status = Literal["queued", "running", "passed", "failed", "deployed", "deploy_failed", "blocked", "smoke_failed",
                 "rolled_back", "superseded", "interrupted", "skipped", "error"]
Source = Literal["webhook", "catch-up", "retry", "check"]
#: Statuses after which nothing more happens to a run.
FINISHED: tuple[str, ...] = ("passed", "failed", "deployed", "deploy_failed", "blocked", "smoke_failed",
                             "rolled_back", "superseded", "interrupted", "skipped", "error")
#: Runs whose test suite ran to an answer (what the catch-up compares with the branch head).
TESTED: tuple[str, ...] = ("passed", "failed", "deployed", "deploy_failed", "blocked", "smoke_failed",
                           "rolled_back")
#: Runs that make a later webhook for the same app, ref and ``after`` a duplicate: waiting, running,
#: or finished with an outcome that testing again would not change (docs/gate.md, "Replay").
ANSWERED: tuple[str, ...] = ("queued", "running", "passed", "deployed", "smoke_failed", "rolled_back", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    app TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    ref TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    pusher TEXT NOT NULL DEFAULT '',
    delivery_id TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    tests_started_at TEXT,
    tests_finished_at TEXT,
    deploy_called_at TEXT,
    finished_at TEXT,
    summary TEXT NOT NULL DEFAULT '',
    superseded_by INTEGER,
    retry_of INTEGER,
    deploy_id INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_app_status ON runs (app, status, id);
-- The branch head found when the gate first looked, before it had tested anything: what
-- already runs, not a push it missed.
CREATE TABLE IF NOT EXISTS baselines (
    app TEXT PRIMARY KEY,
    commit_sha TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
-- runs.pushed (added by _migrate): the push's ``after`` as Forgejo sent it, which for an annotated
-- tag is the tag object while commit_sha becomes the commit it names.
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    run_id INTEGER
);
"""


@dataclass
class Run:
    id: int
    app: str
    commit_sha: str
    ref: str
    source: str
    status: str
    title: str
    pusher: str
    delivery_id: str | None
    created_at: datetime
    started_at: datetime | None
    tests_started_at: datetime | None
    tests_finished_at: datetime | None
    deploy_called_at: datetime | None
    finished_at: datetime | None
    summary: str
    superseded_by: int | None
    retry_of: int | None
    deploy_id: int | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def timings(self) -> dict[str, float | None]:
        """Seconds spent waiting, testing and in total (None while unknown)."""
        def between(a: datetime | None, b: datetime | None) -> float | None:
            return round((b - a).total_seconds(), 3) if a and b else None
        return {"queued": between(self.created_at, self.started_at),
                "tests": between(self.tests_started_at, self.tests_finished_at),
                "total": between(self.created_at, self.finished_at)}

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {key: getattr(self, key) for key in (
            "id", "app", "commit_sha", "ref", "source", "status", "title", "pusher", "summary", "superseded_by",
            "retry_of", "deploy_id")}
        for key in ("created_at", "started_at", "tests_started_at", "tests_finished_at", "deploy_called_at",
                    "finished_at"):
            value = getattr(self, key)
            document[key] = value.isoformat() if value else None
        document["seconds"] = self.timings()
        return document


@dataclass(frozen=True)
class Enqueued:
    run_id: int | None
    duplicate: bool
    #: For a webhook that means what an earlier run's did (a Replay): that run and its status.
    same_as: tuple[int, str] | None = None


class RunNotFound(NotFound):
    pass


class RunQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Python's sqlite3 serialises nothing across threads; one lock keeps each
        # read-modify-write (claim, supersede) atomic within this process.
        self._lock = threading.Lock()
        self._local = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            create_private_database(path)
            with self._connect() as db:
                db.executescript(_SCHEMA)
                _migrate(db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the gate's run queue {path}: {exc}",
                              hint="Set gate.directory (or state_dir) to a directory railguard may write") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread, kept open: closing the last connection to a WAL database
        # checkpoints and deletes the WAL, which made each webhook answer several ms slower.
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            # No checkpoint inside a commit: its fsyncs would stall the webhook handler, which
            # runs on the event loop. The workers checkpoint between runs (checkpoint()).
            connection.execute("PRAGMA wal_autocheckpoint=0")
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        yield connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # --- writing --------------------------------------------------------------------------------

    def seen_delivery(self, delivery_id: str, *, now: datetime, outcome: str) -> bool:
        """Record a delivery id; False when it was recorded before (a replay)."""
        with self._transaction() as db:
            cursor = db.execute("INSERT OR IGNORE INTO deliveries (delivery_id, received_at, outcome) VALUES (?, ?, ?)",
                                (delivery_id, now.isoformat(), outcome))
            return cursor.rowcount == 1

    def forget_deliveries(self, *, before: datetime) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM deliveries WHERE received_at < ?", (before.isoformat(),)).rowcount

    def forget_old_runs(self, app: str, *, keep: int) -> list[int]:
        """Delete ``app``'s finished runs beyond its newest ``keep``; returns their ids (their logs go too).

        The newest tested run, which the catch-up compares the branch head with, is always among the kept.
        """
        with self._transaction() as db:
            ids = [row["id"] for row in db.execute(
                "SELECT id FROM runs WHERE app = ? AND finished_at IS NOT NULL AND id NOT IN "
                "(SELECT id FROM runs WHERE app = ? ORDER BY id DESC LIMIT ?)", (app, app, keep))]
            db.executemany("DELETE FROM runs WHERE id = ?", [(run_id,) for run_id in ids])
        return ids

    def enqueue(self, *, app: str, commit: str, ref: str, source: Source, now: datetime, title: str = "",
                pusher: str = "", delivery_id: str | None = None, retry_of: int | None = None) -> Enqueued:
        """Queue a run; queue nothing for a ``delivery_id`` seen before, nor for a webhook whose app,
        ref and ``commit`` (the push's ``after``) an :data:`ANSWERED` run already has (a Replay)."""
        with self._transaction() as db:
            if delivery_id is not None:
                cursor = db.execute("INSERT OR IGNORE INTO deliveries (delivery_id, received_at, outcome)"
                                    " VALUES (?, ?, 'queued')", (delivery_id, now.isoformat()))
                if cursor.rowcount == 0:
                    return Enqueued(None, duplicate=True)
            if source == "webhook":
                placeholders = ", ".join("?" for _ in ANSWERED)
                earlier = db.execute(
                    f"SELECT id, status FROM runs WHERE app = ? AND ref = ? AND source != 'check'"
                    f" AND (pushed = ? OR commit_sha = ?) AND status IN ({placeholders}) ORDER BY id DESC LIMIT 1",
                    (app, ref, commit, commit, *ANSWERED)).fetchone()
                if earlier is not None:
                    if delivery_id is not None:
                        db.execute("UPDATE deliveries SET outcome = 'same as an earlier run', run_id = ?"
                                   " WHERE delivery_id = ?", (earlier["id"], delivery_id))
                    return Enqueued(None, duplicate=True, same_as=(earlier["id"], earlier["status"]))
            cursor = db.execute(
                "INSERT INTO runs (app, commit_sha, pushed, ref, source, status, title, pusher, delivery_id,"
                " created_at, retry_of) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                (app, commit, commit, ref, source, title, pusher, delivery_id, now.isoformat(), retry_of))
            run_id = cursor.lastrowid
            assert run_id is not None
            if delivery_id is not None:
                db.execute("UPDATE deliveries SET run_id = ? WHERE delivery_id = ?", (run_id, delivery_id))
            return Enqueued(run_id, duplicate=False)

    def start_check(self, *, app: str, commit: str, ref: str, now: datetime, pusher: str = "") -> int:
        """A run for ``POST /api/v1/check``: tested at once by the handler, never by a worker."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (app, commit_sha, ref, source, status, pusher, created_at, started_at,"
                " tests_started_at) VALUES (?, ?, ?, 'check', 'running', ?, ?, ?, ?)",
                (app, commit, ref, pusher, now.isoformat(), now.isoformat(), now.isoformat()))
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def claim_next(self, app: str, *, now: datetime) -> Run | None:
        """The newest queued run of ``app``, now ``running``; older queued runs become ``superseded``."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM runs WHERE app = ? AND status = 'queued' AND source != 'check'"
                             " ORDER BY id DESC LIMIT 1", (app,)).fetchone()
            if row is None:
                return None
            newest = row["id"]
            db.execute("UPDATE runs SET status = 'superseded', superseded_by = ?, finished_at = ?,"
                       " summary = 'a newer push to the same app was waiting' "
                       "WHERE app = ? AND status = 'queued' AND id < ?", (newest, now.isoformat(), app, newest))
            db.execute("UPDATE runs SET status = 'running', started_at = ? WHERE id = ?", (now.isoformat(), newest))
            return _run(db.execute("SELECT * FROM runs WHERE id = ?", (newest,)).fetchone())

    def update(self, run_id: int, **fields: Any) -> None:
        allowed = {"status", "summary", "tests_started_at", "tests_finished_at", "deploy_called_at", "finished_at",
                   "deploy_id", "commit_sha"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        values = [v.isoformat() if isinstance(v, datetime) else v for v in fields.values()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._transaction() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values, run_id))

    def finish(self, run_id: int, status: Status, summary: str, *, now: datetime) -> None:
        self.update(run_id, status=status, summary=summary, finished_at=now)

    def recover_interrupted(self, *, now: datetime) -> list[tuple[int, int | None]]:
        """Mark runs left ``running`` by a previous process ``interrupted`` and queue them again.

        Returns ``(interrupted id, new run id or None)``; None when a newer run of the app already
        waits (it supersedes the interrupted commit anyway). Checks are not re-run: the push that
        asked for them has long been answered.
        """
        recovered = []
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM runs WHERE status = 'running' ORDER BY id").fetchall()
            for row in rows:
                run = _run(row)
                if run.source == "check":
                    db.execute("UPDATE runs SET status = 'interrupted', finished_at = ?, summary = ? WHERE id = ?",
                               (now.isoformat(), "the gate stopped during this check", run.id))
                    continue
                newer = db.execute("SELECT id FROM runs WHERE app = ? AND status = 'queued' AND id > ?",
                                   (run.app, run.id)).fetchone()
                new_id = None
                if newer is None:
                    cursor = db.execute(
                        "INSERT INTO runs (app, commit_sha, ref, source, status, title, pusher, created_at, retry_of)"
                        " VALUES (?, ?, ?, 'retry', 'queued', ?, ?, ?, ?)",
                        (run.app, run.commit_sha, run.ref, run.title, run.pusher, now.isoformat(), run.id))
                    new_id = cursor.lastrowid
                summary = (f"the gate stopped during this run; queued again as run {new_id}" if new_id else
                           f"the gate stopped during this run; run {newer['id']} (newer) takes over")
                db.execute("UPDATE runs SET status = 'interrupted', finished_at = ?, summary = ? WHERE id = ?",
                           (now.isoformat(), summary, run.id))
                recovered.append((run.id, new_id))
        return recovered

    def checkpoint(self) -> None:
        """Copy the WAL back into the database file (PASSIVE: never waits for, nor blocks, a writer).

        Without the queue's lock, so a webhook arriving meanwhile commits at once."""
        with self._connect() as db:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # --- reading --------------------------------------------------------------------------------

    def get(self, run_id: int) -> Run:
        # Ids are SQLite integers: a number beyond 64 bits names no run (SQLite would raise OverflowError).
        row = None
        if -(2**63) <= run_id < 2**63:
            with self._connect() as db:
                row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no run {run_id}", hint="See the runs at GET /runs")
        return _run(row)

    def list(self, *, app: str | None = None, limit: int = 50) -> list[Run]:
        """Newest first."""
        with self._connect() as db:
            if app is None:
                rows = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = db.execute("SELECT * FROM runs WHERE app = ? ORDER BY id DESC LIMIT ?", (app, limit)).fetchall()
        return [_run(row) for row in rows]

    def known_commit(self, app: str) -> str | None:
        """The newest commit of ``app`` that was tested, or waits or runs now, else the baseline
        (what the catch-up compares the branch head with); None before the gate first looked."""
        placeholders = ", ".join("?" for _ in TESTED)
        with self._connect() as db:
            row = db.execute(f"SELECT commit_sha FROM runs WHERE app = ? AND source != 'check' AND"
                             f" (status IN ({placeholders}) OR status IN ('queued', 'running'))"
                             " ORDER BY id DESC LIMIT 1", (app, *TESTED)).fetchone()
            if row is None:
                row = db.execute("SELECT commit_sha FROM baselines WHERE app = ?", (app,)).fetchone()
        return row["commit_sha"] if row else None

    def set_baseline(self, app: str, commit: str, *, now: datetime) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO baselines (app, commit_sha, seen_at) VALUES (?, ?, ?)",
                       (app, commit, now.isoformat()))

    def counts(self) -> dict[tuple[str, str], int]:
        """(app, status) -> number of runs."""
        with self._connect() as db:
            rows = db.execute("SELECT app, status, COUNT(*) AS n FROM runs GROUP BY app, status").fetchall()
        return {(row["app"], row["status"]): row["n"] for row in rows}


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a queue file written by an older railguard up to this schema (idempotent)."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
    if "pushed" not in columns:
        db.execute("ALTER TABLE runs ADD COLUMN pushed TEXT")


def _run(row: sqlite3.Row) -> Run:
    def moment(key: str) -> datetime | None:
        return datetime.fromisoformat(row[key]) if row[key] else None

    created = moment("created_at")
    assert created is not None
    return Run(id=row["id"], app=row["app"], commit_sha=row["commit_sha"], ref=row["ref"], source=row["source"],
               status=row["status"], title=row["title"], pusher=row["pusher"], delivery_id=row["delivery_id"],
               created_at=created, started_at=moment("started_at"), tests_started_at=moment("tests_started_at"),
               tests_finished_at=moment("tests_finished_at"), deploy_called_at=moment("deploy_called_at"),
               finished_at=moment("finished_at"), summary=row["summary"], superseded_by=row["superseded_by"],
               retry_of=row["retry_of"], deploy_id=row["deploy_id"])
