"""``drill.log`` next to the backups: one logfmt line per drill, written by the runner through
:func:`append_drill_line` and read here for ``railguard status``, the metrics and the daemon.

Its own module, so that the readers (``railguard status`` above all, which must start fast)
need neither the launcher nor the HTTP checks of :mod:`railguard.drill.runner`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.logfmt import append_line, line_time, read_lines

LOG_NAME = "drill.log"
#: The result a passing drill is recorded with (backup.log's vocabulary: result=ok|failed).
PASSED = "ok"
#: drill.log keeps at most this much of the app's output per failed drill.
MAX_LOGGED_OUTPUT = 4000


def append_drill_line(directory: Path, fields: dict[str, Any]) -> None:
    """One drill's line; raises OSError when the directory cannot be written."""
    if "output" in fields:
        fields = {**fields, "output": fields["output"][-MAX_LOGGED_OUTPUT:]}
    directory.mkdir(parents=True, exist_ok=True)
    append_line(directory / LOG_NAME, fields)


def read_drill_log(directory: Path) -> list[dict[str, str]]:
    """Every line of ``drill.log`` in ``directory``, oldest first (``[]`` when no drill ran)."""
    return read_lines(directory / LOG_NAME)


def drill_passed(line: dict[str, str]) -> bool:
    return line.get("result") == PASSED


def last_drill_success(directory: Path) -> datetime | None:
    """When the last passing drill recorded in ``directory`` started; None if none passed."""
    for line in reversed(read_drill_log(directory)):
        if drill_passed(line) and line_time(line):
            return line_time(line)
    return None
