"""``backup.log`` in the backup directory: one logfmt line per backup attempt (``event=backup``,
by default), written by :mod:`railguard.backup.engine`, and the lines that prune and restore add
(``event=prune``, ``event=restore``). Read here for ``railguard status`` and the metrics.

Its own module, so that those readers (``railguard status`` above all, which must start fast)
need none of the engine's snapshot, compression and verification.
"""

from __future__ import annotations

from pathlib import Path

from railguard.logfmt import read_lines_backwards

LOG_NAME = "backup.log"


def last_backup_attempt(directory: Path) -> dict[str, str] | None:
    """The last backup line of ``backup.log`` in ``directory`` (prune writes ``event=prune`` lines there too)."""
    for line in read_lines_backwards(directory / LOG_NAME):
        if line.get("event", "backup") == "backup":
            return line
    return None
