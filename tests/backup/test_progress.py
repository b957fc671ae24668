"""Progress of a backup, a verification and a restore: every stage from 0 to its real total.

A real SQLite database of a few MiB (incompressible rows, so each stage moves several 1 MiB
chunks), real backups, a real restore over a real database. Nothing here depends on timing:
the reports are recorded and checked afterwards (tests/progress_log.py has the rules).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import create_tasks_database, grow_with_random_rows
from progress_log import ProgressLog

from railguard.backup import list_backups, take_backup, verify_backup
from railguard.config import BackupSettings
from railguard.restore import restore_backup

NOW = datetime(2026, 11, 20, 3, 30, tzinfo=timezone.utc)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    path = create_tasks_database(data / "tasks.db")
    grow_with_random_rows(path, 4)
    return path


def page_bytes(database: Path) -> int:
    connection = sqlite3.connect(database)
    try:
        return connection.execute("PRAGMA page_count").fetchone()[0] * connection.execute("PRAGMA page_size").fetchone()[0]
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["backup-api", "vacuum-into"])
def test_every_backup_stage_goes_from_zero_to_its_real_total(database: Path, tmp_path: Path, method: str) -> None:
    size = page_bytes(database)
    log = ProgressLog()

    result = take_backup(database, BackupSettings(directory=tmp_path / "backups", method=method), now=NOW,
                         progress=log)

    raw = result.manifest.size_raw
    assert log.stages() == ["copy", "compress", "verify", "check"]
    # The copy's total is the database's size before the copy started, not "0/?".
    assert log.runs()[0].reports[0] == (0, size)
    assert log.checked() == {"copy": [size], "compress": [raw], "verify": [raw], "check": [raw]}
    # Compressing and re-reading move chunk by chunk, not in one jump at the end.
    assert all(len(run.reports) > 3 for run in log.runs() if run.stage in ("compress", "verify"))


def test_an_uncompressed_backup_reports_its_hashing_instead_of_compressing(database: Path, tmp_path: Path) -> None:
    log = ProgressLog()

    result = take_backup(database, BackupSettings(directory=tmp_path / "backups", compression="none"), now=NOW,
                         progress=log)

    raw = result.manifest.size_raw
    assert log.checked() == {"copy": [page_bytes(database)], "hash": [raw], "check": [raw]}


def test_verifying_a_backup_reads_decompresses_and_checks_it_up_to_its_sizes(database: Path, tmp_path: Path) -> None:
    taken = take_backup(database, BackupSettings(directory=tmp_path / "backups"), now=NOW)
    [record] = list_backups(tmp_path / "backups")
    log = ProgressLog()

    assert verify_backup(record, tmp_path / "backups", progress=log).ok

    manifest = taken.manifest
    assert log.stages() == ["read", "decompress", "check"]
    assert log.checked() == {"read": [manifest.size_stored], "decompress": [manifest.size_raw],
                             "check": [manifest.size_raw]}


def test_a_restore_reports_the_verification_then_the_safety_copy_of_the_database_it_replaces(
        database: Path, tmp_path: Path) -> None:
    taken = take_backup(database, BackupSettings(directory=tmp_path / "backups"), now=NOW)
    [record] = list_backups(tmp_path / "backups")
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    replaced = database.stat().st_size
    log = ProgressLog()

    result = restore_backup(record, database, now=NOW, progress=log)

    assert result.safety_copy is not None and result.safety_copy.stat().st_size == replaced
    manifest = taken.manifest
    assert log.stages() == ["read", "decompress", "check", "safety-copy"]
    assert log.checked() == {"read": [manifest.size_stored], "decompress": [manifest.size_raw],
                             "check": [manifest.size_raw], "safety-copy": [replaced]}

