"""Restore: put a verified backup in place of a database, with a safety copy of the old one."""

from railguard.restore.engine import (
    DatabaseInUse,
    RestoreNoSpace,
    RestoreResult,
    RestoreTargetIsDirectory,
    RestoreTargetNotWritable,
    check_not_in_use,
    restore_backup,
    restore_generation,
)
from railguard.restore.holders import Holder, find_holders

__all__ = [
    "DatabaseInUse",
    "Holder",
    "RestoreNoSpace",
    "RestoreResult",
    "RestoreTargetIsDirectory",
    "RestoreTargetNotWritable",
    "check_not_in_use",
    "find_holders",
    "restore_backup",
    "restore_generation",
]
