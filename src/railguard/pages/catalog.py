"""What generations a page store holds, read from the manifests themselves.

A generation is *good* when its manifest parses, names itself by its file's name and says it
was verified (the writer only ever publishes verified ones; anything else was edited or
damaged). Whether its packs are all there and intact is what rebuilding it proves
(:mod:`railguard.pages.rebuild`; ``backups verify``), not the listing: a listing reads
manifests only.

Like whole-file backups, a generation belongs to an app by its manifest's ``app`` and
``source`` (:class:`railguard.backup.catalog.Owner`), never by its file name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from railguard.backup.catalog import Owner, Record, check_belongs_manifest, manifest_status
from railguard.backup.manifest import BadManifest
from railguard.backup.naming import BackupId
from railguard.errors import NotFound
from railguard.pages.store import (
    GENERATION_SUFFIX, GenerationManifest, generation_names, parse_generation_name, store_for,
)


@dataclass
class GenerationRecord(Record):
    id: BackupId
    directory: Path  # the backup directory (its lock and backup.log)
    store: Path
    manifest_path: Path
    manifest: GenerationManifest | None
    status: str
    detail: str = ""

    @property
    def _written(self) -> Path:
        return self.manifest_path


def list_generations(directory: Path, owner: str | Owner) -> list[GenerationRecord]:
    """The generations of ``owner`` (an :class:`Owner`, or a database file stem) in ``directory``, oldest first."""
    stem = owner.stem if isinstance(owner, Owner) else owner
    store = store_for(directory, stem)
    records = []
    for file_name in generation_names(store):
        generation_id = parse_generation_name(file_name, stem)
        if generation_id is None:
            continue
        record = _record(generation_id, directory, store, store / file_name)
        if record is None:
            continue
        if isinstance(owner, Owner) and record.manifest is not None and owner.refusal(record.manifest) is not None:
            continue
        records.append(record)
    records.sort(key=lambda record: (record.created_at, record.id))
    return records


def _record(generation_id: BackupId, directory: Path, store: Path, path: Path) -> GenerationRecord | None:
    try:
        manifest = GenerationManifest.parse(path.read_bytes())
    except FileNotFoundError:
        return None  # removed by a GC while we listed
    except OSError as exc:
        return GenerationRecord(generation_id, directory, store, path, None, "unreadable manifest",
                                exc.strerror or str(exc))
    except BadManifest as exc:
        return GenerationRecord(generation_id, directory, store, path, None, "unreadable manifest", str(exc))
    return GenerationRecord(generation_id, directory, store, path, manifest,
                            manifest_status(manifest.name, manifest.verified, generation_id))


def is_generation_name(name: str) -> bool:
    return parse_generation_name(name.removesuffix(GENERATION_SUFFIX) + GENERATION_SUFFIX) is not None


def resolve_generation(directory: Path, owner: str | Owner, name: str | None, *,
                       allow_foreign: bool = False) -> GenerationRecord:
    """The generation ``name`` (``latest`` or None: the newest good one) of ``owner``."""
    records = list_generations(directory, owner)
    if name in (None, "latest"):
        good = [record for record in records if record.is_good]
        if not good:
            raise NotFound(f"no verified generation in {directory}", hint="Take one with: railguard backup")
        return good[-1]
    wanted = name.removesuffix(GENERATION_SUFFIX)
    for record in records:
        if record.name == wanted:
            return record
    if isinstance(owner, Owner):
        for record in list_generations(directory, owner.stem):
            if record.name == wanted and record.manifest is not None:
                if not allow_foreign:
                    check_belongs_manifest(record.name, record.manifest, owner)
                return record
    names = [record.name for record in records]
    nearest = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5) or names[-3:]
    hint = f"Did you mean: {', '.join(nearest)}" if nearest else "Take one with: railguard backup"
    raise NotFound(f"no generation named {name!r} in {directory}", hint=hint)


def generation_at(directory: Path, owner: str | Owner, moment: datetime) -> GenerationRecord:
    """The newest good generation taken at or before ``moment`` (aware)."""
    good = [record for record in list_generations(directory, owner) if record.is_good and record.created_at <= moment]
    if not good:
        raise NotFound(f"no verified generation at or before {moment.isoformat(sep=' ', timespec='minutes')} "
                       f"in {directory}", hint="List them with: railguard backups list")
    return good[-1]
