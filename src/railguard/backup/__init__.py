"""Verified online SQLite backups: snapshot, verify, compress, promote, catalog.

The names below are imported on first use (PEP 562, :mod:`railguard.lazy`): ``railguard
status`` lists the catalog and reads ``backup.log`` (:mod:`railguard.backup.log`) without the
engine's snapshot, compression and verification.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from railguard import lazy

_EXPORTS = {
    "BackupRecord": "catalog", "list_backups": "catalog", "resolve_backup": "catalog",
    "BackupResult": "engine", "take_backup": "engine", "Manifest": "manifest",
    "VerifiedCopy": "verify", "materialize": "verify", "verify_backup": "verify",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names for mypy, which would otherwise see each as Any
    # ("X as X": exported, since mypy cannot read the computed __all__)
    from railguard.backup.catalog import BackupRecord as BackupRecord
    from railguard.backup.catalog import list_backups as list_backups
    from railguard.backup.catalog import resolve_backup as resolve_backup
    from railguard.backup.engine import BackupResult as BackupResult
    from railguard.backup.engine import take_backup as take_backup
    from railguard.backup.manifest import Manifest as Manifest
    from railguard.backup.verify import VerifiedCopy as VerifiedCopy
    from railguard.backup.verify import materialize as materialize
    from railguard.backup.verify import verify_backup as verify_backup

__getattr__ = lazy.exports(__name__, _EXPORTS)
