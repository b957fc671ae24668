"""Verified online SQLite backups: snapshot, verify, compress, promote, catalog."""

from railguard.backup.catalog import BackupRecord, list_backups, resolve_backup
from railguard.backup.engine import BackupResult, take_backup
from railguard.backup.manifest import Manifest
from railguard.backup.verify import VerifiedCopy, materialize, verify_backup

__all__ = [
    "BackupRecord",
    "BackupResult",
    "Manifest",
    "VerifiedCopy",
    "list_backups",
    "materialize",
    "resolve_backup",
    "take_backup",
    "verify_backup",
]
