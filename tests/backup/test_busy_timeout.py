"""``backup.busy_timeout`` reaches SQLite whole (it was capped at 5 s), and a real lock held
longer than a short configured value fails the backup with exit 5 and nothing left behind."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import create_tasks_database

from railguard.backup import list_backups, take_backup
from railguard.backup.snapshot import DatabaseBusy, _open_source
from railguard.config import BackupSettings
from railguard.errors import ExitCode

NOW = datetime(2026, 11, 27, 3, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("seconds", [0.25, 30.0, 600.0])
def test_the_source_connection_waits_as_long_as_configured(tasks_db: Path, seconds: float) -> None:
    connection = _open_source(tasks_db, seconds)
    try:
        assert connection.execute("PRAGMA busy_timeout").fetchone() == (int(seconds * 1000),)
    finally:
        connection.close()


def test_a_lock_held_past_a_short_busy_timeout_fails_the_backup_cleanly(tmp_path: Path) -> None:
    database = create_tasks_database(tmp_path / "tasks.db", wal=False)  # rollback journal: writers block readers
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    settings = BackupSettings(directory=tmp_path / "backups", busy_timeout=timedelta(milliseconds=300))
    try:
        with pytest.raises(DatabaseBusy) as busy:
            take_backup(database, settings, now=NOW)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert busy.value.exit_code == ExitCode.BUSY
    assert list_backups(settings.directory) == []
    temporaries = [path.name for path in settings.directory.iterdir() if path.name.startswith(".tasks-")]
    assert temporaries == []
