"""One greppable line per event, in logfmt (``key=value key2="with spaces"``).

Used for ``backup.log`` and ``drill.log``, the daemon's run log and every command's log on
stderr (:class:`LogfmtFormatter`). Every timestamp railguard writes, in a log or in its output,
goes through :func:`timestamp`: one format (ISO 8601, seconds, ``+00:00`` style offset), so one
pattern greps them all. A line is appended with a single ``write`` on a file
opened ``O_APPEND`` and fsynced, so concurrent writers never interleave inside a line and a
crash never leaves half a line behind a complete one.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: What follows a backslash in a quoted value, and what the pair stands for (any other character: itself).
_UNESCAPED = {"n": "\n", "r": "\r"}
#: One field of a line without escapes, matched where the one before it ended: spaces, the key
#: (up to the next ``=``), then a quoted value (up to the next quote, or the end of a line cut
#: short) or a plain one (up to the next space).
_FIELD = re.compile(r' *([^=]*)=(?:"([^"]*)"?|([^ ]*))')
_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:+@,%")


def timestamp(moment: datetime) -> str:
    """The one timestamp format: ``2026-03-01T02:00:00+00:00`` (an aware datetime keeps its
    offset; a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat(timespec="seconds")


class LogfmtFormatter(logging.Formatter):
    """``time=<timestamp> level=<LEVEL> <message>`` for a log record (the message is logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, timezone.utc).astimezone()
        line = f"time={timestamp(moment)} level={record.levelname} {record.getMessage()}"
        if record.exc_info:
            line += " " + format_line({"exception": self.formatException(record.exc_info)})
        return line


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, datetime):
        text = timestamp(value)
    else:
        text = str(value)
    if text and set(text) <= _PLAIN:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def format_line(fields: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={_value(value)}" for key, value in fields.items() if value is not None)


def parse_line(line: str) -> dict[str, str]:
    """Inverse of :func:`format_line` (values come back as strings).

    ``status`` and the status page parse every line of a year-long ``destinations.log`` and the
    tail of ``backup.log`` on each call, so a line without a backslash (nearly all of them) is
    cut into its fields by one regular expression, in C; a line with escapes is read field by
    field, each quoted value cut at its escapes and closing quote with ``str.find``. Both read
    every line as the character-at-a-time parser before them did (tests/test_logfmt_parse.py)."""
    if "\\" not in line:
        return {key: quoted or plain for key, quoted, plain in _FIELD.findall(line)}
    fields: dict[str, str] = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        eq = line.find("=", i)
        if eq < 0:
            break
        key = line[i:eq]
        i = eq + 1
        if i < n and line[i] == '"':
            i += 1
            parts: list[str] = []
            while True:
                quote = line.find('"', i)
                end = n if quote < 0 else quote
                escape = line.find("\\", i, end)
                if escape < 0:
                    parts.append(line[i:end])
                    i = end
                    break
                parts.append(line[i:escape])
                if escape + 1 == n:  # a backslash that ends the line stands for itself
                    parts.append("\\")
                    i = n
                    break
                escaped = line[escape + 1]
                parts.append(_UNESCAPED.get(escaped, escaped))
                i = escape + 2
            i += 1
            fields[key] = "".join(parts)
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            fields[key] = line[i:end]
            i = end
    return fields


def append_line(path: Path, fields: Mapping[str, Any], *, mode: int = 0o600) -> None:
    data = (format_line(fields) + "\n").encode("utf-8")
    # O_NOFOLLOW: a link planted at the log's name must never make us append to its target.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [parse_line(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


#: How much of a log :func:`read_lines_backwards` reads at a time, from the end.
_BLOCK = 64 * 1024


def read_lines_backwards(path: Path) -> Iterator[dict[str, str]]:
    """The lines of ``path``, newest first, read a block at a time from the end: the last
    line of a year-long log costs one block, not the year (the status page and ``status``
    ask for the last backup attempt on every call)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        position = handle.seek(0, os.SEEK_END)
        rest = b""  # the start of a line whose beginning is in a block not read yet
        while position > 0:
            size = min(_BLOCK, position)
            position -= size
            handle.seek(position)
            lines = (handle.read(size) + rest).split(b"\n")
            rest = lines.pop(0)  # may be cut: wait for the block before it
            for raw in reversed(lines):
                if raw.strip():
                    yield parse_line(raw.decode("utf-8"))
        if rest.strip():
            yield parse_line(rest.decode("utf-8"))


def line_time(line: Mapping[str, str]) -> datetime | None:
    """The ``time`` field every railguard log line is written with; None when absent or unreadable."""
    text = line.get("time")
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
