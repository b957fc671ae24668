"""Backup file names: ``<stem>-YYYYMMDD-HHmm[-N].sqlite3[.gz|.zst]`` plus ``<id>.manifest.json``.

The stem is the database file's stem (``tasks.db`` → ``tasks``); the time is the backup's start
in the configured time zone. A second backup in the same minute gets ``-2``, ``-3``, ...

A name is never reused, not even after prune removed the backup that had it (three backups in
one minute, or an ``every 20s`` schedule, then a prune): :func:`free_id` takes the number after
the highest one that minute has ever had, counting the files there and in ``failed/`` and the
names ``backup.log`` recorded. A destination that still holds a pruned backup's copy therefore
never sees a different backup under its name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# stem_for lives in railguard.values (the configuration checks backup names with it); the backup
# package and its users import it from here.
from railguard.values import stem_for as stem_for

SUFFIX_BY_COMPRESSION = {"none": "", "gzip": ".gz", "zstd": ".zst"}
COMPRESSION_BY_SUFFIX = {suffix: name for name, suffix in SUFFIX_BY_COMPRESSION.items()}
MANIFEST_SUFFIX = ".manifest.json"
FAILED_DIR = "failed"

#: ``file=NAME`` in a backup.log line (logfmt; names never need quoting, but allow it).
_LOGGED_FILE = re.compile(r'(?:^|\s)file="?([^\s"]+)')

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


def free_id(directory: Path, stem: str, local_now: datetime, logged: Iterable[str] = ()) -> BackupId:
    """A name for a backup of ``stem`` taken at ``local_now`` that no backup has ever had.

    ``logged`` are file names recorded in the directory's log (a backup pruned since, or one
    whose files were removed by hand, is still there).
    """
    minute = id_for(stem, local_now)
    highest = 0
    names = [entry.name for place in (directory, directory / FAILED_DIR) if place.is_dir()
             for entry in place.iterdir()]
    for name in [*names, *logged]:
        parsed = parse_name(name, stem)
        if parsed and (parsed[0].date, parsed[0].time) == (minute.date, minute.time):
            highest = max(highest, parsed[0].seq)
    return id_for(stem, local_now, highest + 1)


def logged_file_names(log: Path) -> list[str]:
    """Every ``file=`` name in a backup.log (an unreadable or missing log names none)."""
    try:
        text = log.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return []
    return _LOGGED_FILE.findall(text)
