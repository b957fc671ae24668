"""The deploy history: one row per deploy railguard makes, in a small SQLite file.

CapRover hides its version list from an app token, so railguard keeps its own record of
what it shipped (app, commit, image, version, time, result): ``railguard rollback`` works
from it with an app token alone, and ``railguard deploys list`` shows it.

A row is written *before* CapRover is called (result ``pending``) and completed after, so a
crash in between leaves an honest ``pending`` row rather than nothing. A row's ``detail`` (often
CapRover's own words) is scrubbed of every secret the process knows before it is stored: the
file outlives the run, and ``status`` and ``deploys list`` show it to whoever runs them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from railguard.durable import create_private_database
from railguard.errors import ConfigError
from railguard.secrets import redact

Kind = Literal["deploy", "release", "rollback"]
#: ``blocked``: a pre-deploy step (the rehearsal, the snapshot) failed, the platform was not asked.
Result = Literal["pending", "accepted", "ok", "failed", "superseded", "blocked"]
#: Results after which the deployed tree is (or is believed to be) what runs.
LIVE_RESULTS = ("accepted", "ok")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deploys (
    id INTEGER PRIMARY KEY,
    app TEXT NOT NULL,
    caprover_app TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('deploy', 'release', 'rollback')),
    ref TEXT,
    git_hash TEXT,
    tag TEXT,
    image TEXT,
    version INTEGER,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    result TEXT NOT NULL CHECK (result IN ('pending', 'accepted', 'ok', 'failed', 'superseded', 'blocked')),
    detail TEXT,
    -- a rollback: the commit it moved away from (never chosen again by a plain rollback)
    rolled_back_from TEXT
);
CREATE INDEX IF NOT EXISTS deploys_by_app ON deploys (app, id);
"""


@dataclass
class DeployRecord:
    id: int
    app: str
    caprover_app: str
    kind: Kind
    ref: str | None
    git_hash: str | None
    tag: str | None
    image: str | None
    version: int | None
    started_at: datetime
    finished_at: datetime | None
    result: Result
    detail: str | None
    rolled_back_from: str | None = None

    @property
    def is_live_candidate(self) -> bool:
        return self.result in LIVE_RESULTS

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "app": self.app, "caprover_app": self.caprover_app, "kind": self.kind,
                "ref": self.ref, "git_hash": self.git_hash, "tag": self.tag, "image": self.image,
                "version": self.version, "started_at": self.started_at, "finished_at": self.finished_at,
                "result": self.result, "detail": self.detail,
                "rolled_back_from": self.rolled_back_from}


class DeployState:
    """The history file. Each call opens its own connection: the CLI is short-lived."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            create_private_database(self.path)
            connection = sqlite3.connect(self.path, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the deploy history {self.path}: {exc}",
                              hint="Set state_dir (or deploy.state_file) to a directory railguard may write") from exc
        with closing(connection):
            # Every deploy is rare and precious: pay for a full fsync at each commit.
            connection.execute("PRAGMA synchronous=FULL")
            _allow_every_result(connection)
            connection.executescript(_SCHEMA)
            connection.row_factory = sqlite3.Row
            with connection:
                yield connection

    def start(self, *, app: str, caprover_app: str, kind: Kind, ref: str | None, git_hash: str | None,
              now: datetime, tag: str | None = None, image: str | None = None,
              rolled_back_from: str | None = None) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO deploys (app, caprover_app, kind, ref, git_hash, tag, image, started_at, result,"
                " rolled_back_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (app, caprover_app, kind, ref, git_hash, tag, image, now.isoformat(), rolled_back_from))
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def finish(self, deploy_id: int, *, result: Result, now: datetime, version: int | None = None,
               image: str | None = None, detail: str | None = None) -> DeployRecord:
        with self._connect() as db:
            db.execute("UPDATE deploys SET result = ?, finished_at = ?, version = COALESCE(?, version),"
                       " image = COALESCE(?, image), detail = ? WHERE id = ?",
                       (result, now.isoformat(), version, image, None if detail is None else redact(detail),
                        deploy_id))
            row = db.execute("SELECT * FROM deploys WHERE id = ?", (deploy_id,)).fetchone()
        return _record(row)

    def latest(self, app: str) -> DeployRecord | None:
        """The newest deploy of ``app`` (one row read, not the whole history)."""
        if not self.path.exists():
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM deploys WHERE app = ? ORDER BY id DESC LIMIT 1", (app,)).fetchone()
        return _record(row) if row is not None else None

    def history(self, app: str) -> list[DeployRecord]:
        """Every deploy of ``app``, newest first."""
        if not self.path.exists():
            return []
        with self._connect() as db:
            rows = db.execute("SELECT * FROM deploys WHERE app = ? ORDER BY id DESC", (app,)).fetchall()
        return [_record(row) for row in rows]


def _allow_every_result(connection: sqlite3.Connection) -> None:
    """A history written before the results ``superseded`` or ``blocked`` existed has a CHECK that
    refuses them: copy its rows into a table with the current schema, in one transaction (SQLite
    cannot alter a CHECK constraint in place)."""
    row = connection.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deploys'").fetchone()
    if row is None or "'blocked'" in row[0]:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute("ALTER TABLE deploys RENAME TO deploys_before_migration")
        connection.execute("DROP INDEX IF EXISTS deploys_by_app")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute("INSERT INTO deploys SELECT * FROM deploys_before_migration")
        connection.execute("DROP TABLE deploys_before_migration")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _record(row: sqlite3.Row) -> DeployRecord:
    return DeployRecord(
        id=row["id"], app=row["app"], caprover_app=row["caprover_app"], kind=row["kind"], ref=row["ref"],
        git_hash=row["git_hash"], tag=row["tag"], image=row["image"], version=row["version"],
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=datetime.fromisoformat(row["finished_at"]) if row["finished_at"] else None,
        result=row["result"], detail=row["detail"], rolled_back_from=row["rolled_back_from"])


def state_path(state_dir: Path, state_file: Path | None) -> Path:
    return state_file if state_file is not None else state_dir / "deploys.sqlite3"


def last_deploy(state_dir: Path, state_file: Path | None, app: str) -> DeployRecord | None:
    """The newest deploy of ``app`` in the history ``state_path`` names; None when none is recorded."""
    path = state_path(state_dir, state_file)
    if not path.exists():
        return None
    return DeployState(path).latest(app)
