"""The last smoke result of each app, in ``<state_dir>/smoke.json``: what ``railguard status``
shows next to the last deploy."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.durable import write_bytes_atomic

FILE_NAME = "smoke.json"
log = logging.getLogger("railguard.smoke")


def record_smoke(state_dir: Path, app: str, *, ok: bool, summary: str, commit: str | None, now: datetime) -> None:
    path = state_dir / FILE_NAME
    results = read_smoke_results(state_dir)
    results[app] = {"at": now.isoformat(), "ok": ok, "commit": commit, "summary": summary}
    state_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (json.dumps(results, indent=1, sort_keys=True) + "\n").encode())


def keep_smoke_result(state_dir: Path, app: str, *, ok: bool, summary: str, commit: str | None,
                      now: datetime) -> bool:
    """:func:`record_smoke`, for the callers whose smoke result stands whether or not it is
    recorded (``railguard smoke``, the deploy's smoke step): a state directory that cannot be
    written costs ``railguard status`` one row, logged as a warning; False then."""
    try:
        record_smoke(state_dir, app, ok=ok, summary=summary, commit=commit, now=now)
    except OSError as exc:
        log.warning("cannot record the smoke result in %s: %s", state_dir, exc.strerror or exc)
        return False
    return True


def read_smoke_results(state_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((state_dir / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
