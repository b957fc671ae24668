"""Fixtures for retention tests: backup records in memory, and real backup directories."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from railguard.backup.catalog import BackupRecord
from railguard.backup.manifest import Manifest
from railguard.backup.naming import id_for


def manifest_for(name: str, created_at: datetime, *, verified: bool = True) -> Manifest:
    return Manifest(
        name=name, file=f"{name}.sqlite3.zst", source="/app/data/tasks.db",
        created_at=created_at.astimezone(timezone.utc).isoformat(timespec="seconds"), sqlite_version="3.40.1",
        page_size=4096, page_count=2, journal_mode="wal", size_raw=8192, size_stored=300, sha256="0" * 64,
        raw_sha256="1" * 64, method="backup-api", compression="zstd", level=None, check="integrity",
        check_result="ok", verified=verified, foreign_key_problems=0,
    )


def record_at(moment: datetime, tz: str = "UTC", *, seq: int = 1, status: str = "ok",
              data: bool = True, manifest: bool = True, directory: Path | None = None) -> BackupRecord:
    """A backup record as list_backups would return it, for the pure core.

    No file exists unless the record has no manifest: then its time comes from its file's
    mtime (as in the catalog), so ``directory`` is required and the file is written there.
    """
    backup_id = id_for("tasks", moment.astimezone(ZoneInfo(tz)), seq)
    if not manifest:
        assert directory is not None, "a record without a manifest takes its time from a real file"
        path = directory / (backup_id.data_name("zstd") if data else backup_id.manifest_name)
        path.write_bytes(b"leftover")
        os.utime(path, (moment.timestamp(), moment.timestamp()))
    directory = directory or Path("/backups")
    return BackupRecord(
        id=backup_id, directory=directory,
        data_path=directory / backup_id.data_name("zstd") if data else None,
        manifest_path=directory / backup_id.manifest_name if manifest else None,
        manifest=manifest_for(str(backup_id), moment) if manifest else None,
        status=status,
    )


def write_backup_files(directory: Path, moment: datetime, tz: str = "UTC", *, manifest: bool = True,
                       data: bool = True, verified: bool = True) -> str:
    """The two files of a backup taken at ``moment`` (content is not a real database: prune and
    list only read names and manifests; restore tests use real backups)."""
    directory.mkdir(parents=True, exist_ok=True)
    backup_id = id_for("tasks", moment.astimezone(ZoneInfo(tz)))
    name = str(backup_id)
    if data:
        path = directory / backup_id.data_name("zstd")
        path.write_bytes(b"backup " + name.encode())
        stamp = moment.timestamp()
        os.utime(path, (stamp, stamp))
    if manifest:
        (directory / backup_id.manifest_name).write_text(
            json.dumps(manifest_for(name, moment, verified=verified).__dict__), encoding="utf-8")
    return name
