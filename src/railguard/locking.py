"""An exclusive, non-blocking OS file lock.

``flock`` locks belong to the open file description, so the kernel drops them when the process
dies however it dies (kill -9 included): a crashed run never leaves a stale lock behind. The
lock file itself stays; its presence means nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from railguard.errors import Busy


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    # O_NOFOLLOW: a link planted at the lock's name must not make root create or open its target.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another railguard run is already working on {what}",
                       hint="Wait for it to finish; the lock is released when it exits") from None
        yield
    finally:
        os.close(fd)
