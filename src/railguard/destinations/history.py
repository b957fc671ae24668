"""``destinations.log`` beside the backups: one line per copy made or failed, and per removal
by a destination's prune. Written by :mod:`railguard.destinations.replicate` and
:mod:`railguard.destinations.prune` through :func:`record`, read here for ``railguard status``
and the metrics, so the file's name and its words (``event``, ``result``) live in one place.

A line that cannot be appended is a warning, never a failed copy: the log is a record of the
work, the copies at the destination are the work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from railguard.logfmt import append_line, line_time, read_lines, read_lines_backwards

LOG_NAME = "destinations.log"
log = logging.getLogger("railguard.destinations")


def record(directory: Path, now: datetime, destination: str, backup: str, result: str, reason: str | None, *,
           event: str = "copy", **fields: Any) -> None:
    """Append one line: ``event`` (``copy`` or ``prune``) of ``backup`` at ``destination``."""
    try:
        append_line(directory / LOG_NAME, {"time": now.astimezone(timezone.utc), "event": event,
                                           "destination": destination, "backup": backup or None,
                                           "result": result, **fields, "reason": reason})
    except OSError as exc:  # the log is a record, not a reason to fail the copy
        log.warning("cannot append to %s: %s", directory / LOG_NAME, exc.strerror or exc)


def read_copy_log(directory: Path) -> list[dict[str, str]]:
    """The ``event=copy`` lines of ``destinations.log`` in ``directory``, oldest first."""
    return [line for line in read_lines(directory / LOG_NAME) if line.get("event") == "copy"]


def last_copy_success(lines: list[dict[str, str]]) -> datetime | None:
    """When the last of ``lines`` (one destination's copy lines) with ``result=ok`` was written."""
    for line in reversed(lines):
        if line.get("result") == "ok" and line_time(line):
            return line_time(line)
    return None


@dataclass(frozen=True)
class LastCopies:
    """What ``railguard status`` says of one destination: its newest copy line, and when its
    newest successful copy was written (:func:`last_copy_success` of its lines)."""

    last: dict[str, str] | None = None
    success_at: datetime | None = None


def last_copies(directory: Path, destinations: Iterable[str]) -> dict[str, LastCopies]:
    """:class:`LastCopies` of each of ``destinations``, from the end of ``destinations.log``: the
    log is read backwards and no further than the newest successful copy of every one of them
    (a year of daily copies is a few lines, not 365, for each ``status`` and page view). A
    destination that never had a successful copy costs the whole log, as before."""
    wanted = set(destinations)
    found = {name: LastCopies() for name in wanted}
    waiting = set(wanted)
    for line in read_lines_backwards(directory / LOG_NAME):
        name = line.get("destination")
        if name not in waiting or line.get("event") != "copy":
            continue
        seen = found[name]
        last = seen.last if seen.last is not None else line
        success = line_time(line) if line.get("result") == "ok" else None
        found[name] = LastCopies(last, success)
        if success is not None:
            waiting.discard(name)
            if not waiting:
                break
    return found
