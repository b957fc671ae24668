"""What backups a directory holds, read from the files themselves (no separate index to drift).

A backup is *good* only when its data file and its manifest are both present and the manifest
says it was verified. Anything else is listed with the reason it is not good, and never
counted as a usable backup: a data file without a manifest (a crash between the two renames,
or a prune that removed the manifest first), a manifest without data, an unreadable manifest.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from railguard.backup.manifest import Manifest
from railguard.backup.naming import BackupId, parse_name
from railguard.errors import NotFound

GOOD = "ok"


@dataclass
class BackupRecord:
    id: BackupId
    directory: Path
    data_path: Path | None
    manifest_path: Path | None
    manifest: Manifest | None
    status: str  # "ok", or why the backup is not usable

    @property
    def name(self) -> str:
        return str(self.id)

    @property
    def is_good(self) -> bool:
        return self.status == GOOD

    @property
    def created_at(self) -> datetime:
        """When the backup was taken (UTC): from the manifest, else when its file was written
        (the name carries the time in the configured zone, which this record does not know)."""
        if self.manifest is not None:
            return datetime.fromisoformat(self.manifest.created_at)
        path = self.data_path or self.manifest_path
        assert path is not None
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)


def list_backups(directory: Path, stem: str | None = None) -> list[BackupRecord]:
    """Every backup in ``directory`` (of database ``stem`` if given), oldest first."""
    if not directory.is_dir():
        return []
    data: dict[BackupId, Path] = {}
    manifests: dict[BackupId, Path] = {}
    for entry in directory.iterdir():
        parsed = parse_name(entry.name, stem)
        if parsed is None or not entry.is_file():
            continue
        backup_id, kind = parsed
        (manifests if kind == "manifest" else data)[backup_id] = entry
    records = []
    for backup_id in sorted(data.keys() | manifests.keys()):
        record = _record(backup_id, directory, data.get(backup_id), manifests.get(backup_id))
        try:
            record.created_at  # noqa: B018  (reads the file's time when there is no manifest)
        except FileNotFoundError:
            continue  # removed by a prune while we listed: it is not there
        records.append(record)
    records.sort(key=lambda record: (record.created_at, record.id))
    return records


def _record(backup_id: BackupId, directory: Path, data_path: Path | None, manifest_path: Path | None) -> BackupRecord:
    manifest = None
    if manifest_path is None:
        status = "incomplete: no manifest"
    else:
        try:
            manifest = Manifest.read(manifest_path)
        except FileNotFoundError:  # a prune removed it while we listed (manifest first, then data)
            return _record(backup_id, directory, data_path, None)
        except (OSError, ValueError, TypeError, json.JSONDecodeError):
            status = "unreadable manifest"
        else:
            if data_path is None:
                status = "missing data file"
            elif data_path.name != manifest.file:
                status = f"manifest names {manifest.file}"
            elif not manifest.verified:
                status = "not verified"
            else:
                status = GOOD
    return BackupRecord(backup_id, directory, data_path, manifest_path, manifest, status)


def resolve_backup(directory: Path, stem: str | None, name: str | None) -> BackupRecord:
    """The backup called ``name`` (``latest`` or None: the newest good one)."""
    records = list_backups(directory, stem)
    if name in (None, "latest"):
        good = [record for record in records if record.is_good]
        if not good:
            raise NotFound(f"no verified backup in {directory}", hint="Take one with: railguard backup")
        return good[-1]
    wanted = _strip_suffixes(name)
    for record in records:
        if record.name == wanted:
            return record
    names = [record.name for record in records]
    nearest = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5) or names[-3:]
    hint = f"Did you mean: {', '.join(nearest)}" if nearest else "Take one with: railguard backup"
    raise NotFound(f"no backup named {name!r} in {directory}", hint=hint)


def _strip_suffixes(name: str) -> str:
    for suffix in (".manifest.json", ".zst", ".gz", ".sqlite3"):
        name = name.removesuffix(suffix)
    return name
