"""A consistent copy of a live SQLite database that never blocks the app's writers.

Two methods, both a single read transaction:

* ``backup-api``: ``sqlite3_backup_step(-1)``. Never a chunked backup: SQLite restarts a
  chunked backup from page 1 whenever another connection writes between steps, so on a busy
  database it may never finish (sqlite.org/backup.html).
* ``vacuum-into``: ``VACUUM INTO``, a compacted copy with no free pages.

In WAL mode readers never block writers, so the app keeps writing while the copy is taken;
the only cost is that the WAL cannot be reset until the read transaction ends, so we keep
that transaction as short as the copy itself. In rollback-journal mode a writer can hold the
database locked: we retry until ``busy_timeout`` and then fail with :class:`DatabaseBusy`.
"""

from __future__ import annotations

import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from railguard.errors import Busy, NotFound, RailguardError, UsageError
from railguard.progress import Progress, finish

SQLITE_HEADER = b"SQLite format 3\x00"


class NotADatabase(UsageError):
    pass


class DatabaseBusy(Busy):
    pass


@dataclass
class SnapshotInfo:
    page_size: int
    page_count: int
    journal_mode: str
    wal_bytes: int
    seconds: float


def check_source(database: Path) -> None:
    """Fail with a clear message unless ``database`` is a readable SQLite file."""
    try:
        info = database.stat()
    except PermissionError:
        raise RailguardError(f"database {database} is not readable by this user (a directory on its path is closed)",
                             hint="Run railguard as the app's user, or grant access to the path") from None
    except FileNotFoundError:
        raise NotFound(f"database {database} does not exist",
                       hint="Check the path (--db or apps.<name>.database in railguard.toml)")
    if stat.S_ISDIR(info.st_mode):
        raise NotADatabase(f"database {database} is a directory, not a SQLite file",
                           hint="Point --db at the .db file inside it")
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read below forever
        raise NotADatabase(f"database {database} is not a regular file",
                           hint="Point --db at the SQLite database file itself")
    try:
        with database.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except PermissionError:
        raise RailguardError(f"database {database} is not readable by this user",
                             hint="Run railguard as the app's user, or grant read access") from None
    if header != SQLITE_HEADER:
        raise NotADatabase(f"{database} is not a SQLite database (bad header)",
                           hint="Check the path; the file may be empty or something else")


def open_readonly(path: Path, *, timeout: float = 5.0, immutable: bool = False) -> sqlite3.Connection:
    """A read-only connection. ``immutable`` skips locking: only for files nobody else writes."""
    uri = f"file:{quote(str(path.absolute()))}?mode=ro" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)


def take_snapshot(database: Path, target: Path, *, method: str, busy_timeout: float,
                  progress: Progress | None = None) -> SnapshotInfo:
    """Copy ``database`` consistently into the new file ``target`` (which must not exist).

    ``progress`` gets the ``copy`` stage: its total is the database's size in pages before the
    copy starts, and it is done in one report at the end, because the copy is one step (a
    chunked backup restarts whenever the app writes: see the module docstring).
    """
    started = time.monotonic()
    wal = database.with_name(database.name + "-wal")
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    deadline = started + busy_timeout
    source = _open_source(database, busy_timeout)
    try:
        journal_mode = source.execute("PRAGMA journal_mode").fetchone()[0]
        total = _size_in_pages(source) if progress else 0
        if progress:
            progress("copy", 0, total)
        if method == "vacuum-into":
            _with_busy_retry(lambda: source.execute("VACUUM INTO ?", (str(target),)), deadline, database)
        else:
            _backup_api(source, target, deadline, database)
    finally:
        source.close()
    finish(progress, "copy", total)
    # The copy keeps the source's WAL flag in its header; make it a plain rollback-journal file
    # so opening it (to verify, or with stock tools) never creates -wal/-shm beside it.
    # The manifest records journal_mode so a restore can put WAL back.
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        # Without this, changing the journal mode fsyncs the whole fresh copy at once, and that
        # burst stalls the app's own commits (bench/backup.py saw a 455 ms commit).
        copy.execute("PRAGMA synchronous=OFF")
        copy.execute("PRAGMA journal_mode=DELETE")
        page_size = copy.execute("PRAGMA page_size").fetchone()[0]
        page_count = copy.execute("PRAGMA page_count").fetchone()[0]
    finally:
        copy.close()
    return SnapshotInfo(page_size, page_count, journal_mode, wal_bytes, time.monotonic() - started)


def _size_in_pages(source: sqlite3.Connection) -> int:
    """The bytes a copy reads: page size x page count, WAL included (what a copy will hold)."""
    page_size = source.execute("PRAGMA page_size").fetchone()[0]
    page_count = source.execute("PRAGMA page_count").fetchone()[0]
    return int(page_size) * int(page_count)


def _open_source(database: Path, busy_timeout: float) -> sqlite3.Connection:
    # Not mode=ro: a read-only connection cannot run WAL recovery or create a missing -shm,
    # and then fails on a database the app has just closed. We only ever read from it.
    try:
        # The configured busy_timeout, whole (the configuration bounds it to what SQLite's
        # millisecond int holds): a writer holding the lock for 20 s must not fail a 30 s setting.
        connection = sqlite3.connect(database, timeout=busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        connection.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        if is_busy(exc):
            raise DatabaseBusy(f"database {database} stayed locked", hint="Retry later, or raise backup.busy_timeout") from exc
        raise NotADatabase(f"{database} cannot be opened as a SQLite database: {exc}",
                           hint="Check the path and that the file is not damaged") from exc
    return connection


def _backup_api(source: sqlite3.Connection, target: Path, deadline: float, database: Path) -> None:
    destination = sqlite3.connect(target, isolation_level=None)
    try:
        # Nothing to protect in a file nobody has seen yet: we fsync it ourselves afterwards.
        destination.execute("PRAGMA journal_mode=OFF")
        destination.execute("PRAGMA synchronous=OFF")

        def give_up_when_late(status: int, remaining: int, total: int) -> None:
            # CPython retries BUSY/LOCKED forever; raising here is the only way to stop it.
            if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() > deadline:
                raise DatabaseBusy(f"database {database} stayed locked past the busy timeout",
                                   hint="Retry later, or raise backup.busy_timeout")

        source.backup(destination, pages=-1, progress=give_up_when_late, sleep=0.05)
    finally:
        destination.close()


def _with_busy_retry(action: Callable[[], object], deadline: float, database: Path) -> None:
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if time.monotonic() > deadline:
                raise DatabaseBusy(f"database {database} stayed locked past the busy timeout",
                                   hint="Retry later, or raise backup.busy_timeout") from exc
            time.sleep(0.05)


def is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)

