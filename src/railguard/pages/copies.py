"""A verified private copy of a backup of either kind, for whatever boots an app on one.

The drill and the rehearsal both need "this backup's database, checked, as a private file
I may rename": a whole-file backup is decompressed and checked
(:func:`railguard.backup.verify.materialize`), a page generation rebuilt from its store and
checked (:func:`railguard.pages.rebuild.rebuild_generation`). This module is that choice,
made once, and the choice of the newest verified backup of either kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from railguard.backup.catalog import BackupRecord
from railguard.backup.verify import CheckResult, materialize
from railguard.errors import VerifyFailed
from railguard.pages.catalog import GenerationRecord
from railguard.pages.rebuild import rebuild_generation
from railguard.progress import Progress

AnyRecord = BackupRecord | GenerationRecord


@dataclass
class CheckedCopy:
    """The copy at ``path`` (inside a work directory that goes when the block exits, unless the
    caller renamed the file out), its check, and what was proven on the way, in words."""

    path: Path
    check: CheckResult
    size_raw: int
    proven: str  # "sha256 ok, decompressed N bytes" / "page hashes ok, rebuilt N bytes"


@contextlib.contextmanager
def checked_copy(record: AnyRecord, into: Path, *, mode: str, progress: Progress | None = None,
                 hint: str = "It cannot be trusted; use another backup") -> Iterator[CheckedCopy]:
    """``record``'s database verified into a private work directory in ``into`` (``mode``:
    ``integrity`` or ``quick``). A record that is not good raises :class:`VerifyFailed`."""
    if isinstance(record, GenerationRecord):
        if record.manifest is None or not record.is_good:
            raise VerifyFailed(f"generation {record.name} is {record.reason}", hint=hint)
        with rebuild_generation(record.store, record.manifest, into, mode=mode, progress=progress) as rebuilt:
            size = record.manifest.size_raw
            yield CheckedCopy(rebuilt.path, rebuilt.check, size, f"page hashes ok, rebuilt {size} bytes")
        return
    with materialize(record, into, mode=mode, progress=progress) as verified:
        assert record.manifest is not None  # materialize refuses a record without one
        size = record.manifest.size_raw
        yield CheckedCopy(verified.path, verified.check, size, f"sha256 ok, decompressed {size} bytes")


def newest_good(records: Sequence[AnyRecord]) -> AnyRecord | None:
    """The newest verified backup among ``records`` (of either kind), or None."""
    good = [record for record in records if record.is_good]
    return max(good, key=lambda record: (record.created_at, record.id), default=None)
