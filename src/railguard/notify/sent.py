"""What was sent: idempotency keys (bounded) and delivery counters, in one small JSON file.

Telegram's sendMessage has no idempotency key, so "deploy OK once per commit" is remembered
here. The file is rewritten atomically under an exclusive ``flock`` held across the send, so
two smoke checks running at once still produce one message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.durable import write_bytes_atomic

FILE_NAME = "notifications.json"


@dataclass
class SentState:
    #: key -> ISO time it was sent, oldest first.
    keys: dict[str, str] = field(default_factory=dict)
    #: "sent", "failed", "duplicate" -> count, since the state was created.
    counts: dict[str, int] = field(default_factory=dict)
    last_failure: dict[str, str] | None = None


class SentLog:
    def __init__(self, directory: Path, *, remember: int = 500) -> None:
        self.path = directory / FILE_NAME
        self.remember = remember

    def read(self) -> SentState:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return SentState()
        except (OSError, ValueError):
            # A damaged state file loses idempotency history, never a notification.
            return SentState()
        return SentState(keys=dict(data.get("keys", {})), counts=dict(data.get("counts", {})),
                         last_failure=data.get("last_failure"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes (and threads: each call opens its own lock file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{FILE_NAME}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def write(self, state: SentState) -> None:
        keys = list(state.keys.items())[-self.remember:]
        document = {"keys": dict(keys), "counts": state.counts, "last_failure": state.last_failure}
        write_bytes_atomic(self.path, (json.dumps(document, indent=1, sort_keys=False) + "\n").encode())


def remember_key(state: SentState, key: str, when: datetime) -> None:
    state.keys.pop(key, None)
    state.keys[key] = when.isoformat()


def count(state: SentState, outcome: str) -> None:
    state.counts[outcome] = state.counts.get(outcome, 0) + 1
