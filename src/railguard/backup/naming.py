"""Backup file names: ``<stem>-YYYYMMDD-HHmm[-N].sqlite3[.gz|.zst]`` plus ``<id>.manifest.json``.

The stem is the database file's stem (``tasks.db`` → ``tasks``); the time is the backup's start
in the configured time zone. A second backup in the same minute gets ``-2``, ``-3``, ...: a name
is never reused, so nothing is ever overwritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SUFFIX_BY_COMPRESSION = {"none": "", "gzip": ".gz", "zstd": ".zst"}
COMPRESSION_BY_SUFFIX = {suffix: name for name, suffix in SUFFIX_BY_COMPRESSION.items()}
MANIFEST_SUFFIX = ".manifest.json"
FAILED_DIR = "failed"

_NAME = re.compile(
    r"^(?P<stem>.+)-(?P<date>\d{8})-(?P<time>\d{4})(?:-(?P<seq>[2-9]|[1-9]\d+))?"
    r"(?P<rest>\.sqlite3(?:\.gz|\.zst)?|\.manifest\.json)$"
)


@dataclass(frozen=True, order=True)
class BackupId:
    """The name of one backup without its file suffixes, e.g. ``tasks-20261127-0330-2``."""

    stem: str
    date: str
    time: str
    seq: int = 1

    def __str__(self) -> str:
        base = f"{self.stem}-{self.date}-{self.time}"
        return base if self.seq == 1 else f"{base}-{self.seq}"

    def data_name(self, compression: str) -> str:
        return f"{self}.sqlite3{SUFFIX_BY_COMPRESSION[compression]}"

    @property
    def manifest_name(self) -> str:
        return f"{self}{MANIFEST_SUFFIX}"


def stem_for(database: Path) -> str:
    return database.name.split(".")[0] or database.name


def id_for(stem: str, when: datetime, seq: int = 1) -> BackupId:
    return BackupId(stem, when.strftime("%Y%m%d"), when.strftime("%H%M"), seq)


def parse_name(filename: str, stem: str | None = None) -> tuple[BackupId, str] | None:
    """``(id, kind)`` where kind is ``manifest`` or a compression name; None if not ours."""
    match = _NAME.match(filename)
    if not match or (stem is not None and match["stem"] != stem):
        return None
    backup_id = BackupId(match["stem"], match["date"], match["time"], int(match["seq"] or 1))
    rest = match["rest"]
    if rest == MANIFEST_SUFFIX:
        return backup_id, "manifest"
    return backup_id, COMPRESSION_BY_SUFFIX[rest.removeprefix(".sqlite3")]
