"""``railguard backups verify`` for page generations: each one rebuilt from the store and checked.

A generation is verified exactly as it was when it was made (:mod:`railguard.pages.rebuild`):
every pack it names must hash to its name, every page to its digest, the rebuilt file to the
manifest's sha256, and ``integrity_check`` must pass on it. Packs are shared, so one damaged
pack breaks every generation that names it: each of those fails with the pack's name in its
result, and the generations that do not need it still pass. The rebuilt copy is made next to
the backups when this process may write there, else in a private temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from railguard.backup.catalog import Owner
from railguard.backup.verify import VerifyOutcome
from railguard.errors import RailguardError
from railguard.pages.catalog import GenerationRecord, list_generations, resolve_generation
from railguard.pages.rebuild import rebuild_generation
from railguard.progress import Progress


def verify_generations(directory: Path, owner: Owner, name: str | None, *, every: bool = False,
                       mode: str = "integrity", progress: Progress | None = None) -> list[VerifyOutcome]:
    """Verify generation ``name`` (``latest`` or None: the newest good one), or with ``every`` each one."""
    records = list_generations(directory, owner) if every else [resolve_generation(directory, owner, name)]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="railguard-verify-") as fallback:
        for record in records:
            scratch = record.directory if os.access(record.directory, os.W_OK) else Path(fallback)
            outcomes.append(verify_generation(record, scratch, mode=mode, progress=progress))
    return outcomes


def verify_generation(record: GenerationRecord, scratch: Path, *, mode: str = "integrity",
                      progress: Progress | None = None) -> VerifyOutcome:
    if record.manifest is None or not record.is_good:
        return VerifyOutcome(record.name, False, f"generation {record.name} is {record.reason}")
    try:
        with rebuild_generation(record.store, record.manifest, scratch, mode=mode, progress=progress) as rebuilt:
            return VerifyOutcome(record.name, True, "ok", rebuilt.check.seconds)
    except RailguardError as exc:
        return VerifyOutcome(record.name, False, exc.message)
