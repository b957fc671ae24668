"""Progress of long work: one small callback type, passed explicitly down the library.

``progress(stage, done, total)``: ``stage`` names the work (:data:`STAGES`), ``done`` and
``total`` count bytes. ``total`` is known before the stage starts wherever it can be: the first
call of a stage is ``(stage, 0, total)`` and its last, once the stage has finished, is
``(stage, total, total)``; in between, ``done`` never decreases. A stage run again (the next
backup a replication uploads) starts again at 0.

``total`` is 0 only where nothing measures the work: ``PRAGMA integrity_check`` runs as one
statement whose length SQLite cannot tell in advance (a VM-step count from
``set_progress_handler`` has no known end), so the ``check`` stage reports ``(check, 0, 0)``
while it runs and ``(check, size, size)`` once it has read the whole database. A stage in
:data:`WAITING_STAGES` counts milliseconds of waiting instead of bytes, and its total is the
timeout it waits for at most.

Every function that takes a ``progress`` accepts None (the default): no reports at all, which
is what the daemon, cron runs and ``--json`` get.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: Called with (stage, done, total): bytes, or milliseconds for a stage in WAITING_STAGES.
Progress = Callable[[str, int, int], None]

#: Every stage the library reports, and what it is doing then (the CLI's label).
STAGES = {
    "copy": "copying",            # the online copy of the live database (one step of the backup API)
    "hash": "hashing",            # a copy stored uncompressed: its sha256
    "compress": "compressing",
    "verify": "re-reading",       # the compressed file read back and compared with the raw sha256
    "check": "checking",          # integrity_check / quick_check: no measure while it runs
    "read": "reading",            # a stored backup's sha256, before it is decompressed
    "decompress": "decompressing",
    "encrypt": "encrypting",      # an encrypted destination: age, before the upload
    "upload": "uploading",
    "read-back": "reading back",  # the copy at a destination, downloaded again and hashed
    "download": "downloading",
    "safety-copy": "safety copy",  # restore: the current database copied aside first
    "health": "waiting for app",  # drill: until /health answers 200, at most start_timeout
}
#: Stages that count milliseconds, not bytes.
WAITING_STAGES = frozenset({"health"})


def stage_counter(progress: Progress | None, stage: str, total: int) -> Callable[[int], None] | None:
    """Report ``(stage, 0, total)`` now; the function returned adds a number of bytes done.

    None when ``progress`` is None, so a caller can pass the result straight on as an optional
    per-chunk callback. The count is never reported past ``total`` (a file that grew since it
    was measured) and never backwards.
    """
    if progress is None:
        return None
    done = 0
    progress(stage, 0, total)

    def add(amount: int) -> None:
        nonlocal done
        if amount <= 0:
            return
        done += amount
        progress(stage, min(done, total) if total else done, total)

    return add


def finish(progress: Progress | None, stage: str, total: int) -> None:
    """The stage's last report: all of ``total`` done."""
    if progress is not None:
        progress(stage, total, total)


class Readable(Protocol):
    """Anything read in chunks: an open file, a download stream, or one of the readers here."""

    def read(self, n: int = -1, /) -> bytes: ...


class CountingReader:
    """Reads through ``source``, handing the size of each chunk read to ``count``."""

    def __init__(self, source: Readable, count: Callable[[int], None] | None) -> None:
        self.source = source
        self.count = count

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        if self.count is not None:
            self.count(len(data))
        return data

    def readable(self) -> bool:
        return True
