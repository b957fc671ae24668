"""Reading copies back: verify one where it is, or fetch one for ``restore --dest`` / ``drill --dest``.

Page generations (docs/pages.md) are read back by
:meth:`railguard.destinations.generations.GenerationCopies.fetch` into a private scratch store,
then verified, restored or drilled by the local paths; a damaged or missing object is named
with every generation there that needs it (:func:`verify_remote_generations`,
:func:`fetch_copy`). :func:`choose_remote` picks among both kinds, so ``latest`` is the newest
good copy of either.

All three go through :func:`fetch_backup`, in this order: download the copy into a private
directory (decrypting it on the way, the stored bytes hashed against the manifest), read that
directory back as local backups and require exactly the one asked for, good. What goes wrong is
told apart there, once:

- the stored bytes differ from the manifest (flipped, cut short, a damaged age header or chunk):
  the copy is **damaged**; it is marked so at the destination (``NAME.damaged.json``, see
  :mod:`railguard.destinations.base`), so ``latest`` and ``random`` skip it from then on and the
  next ``replicate`` replaces it from the local backup (exit 4);
- the bytes are intact and the identity does not open them: the wrong key, nothing is marked (4);
- this host cannot write the copy (disk full): :class:`FetchWriteFailed`, nothing is marked (2);
- the destination cannot be read: :class:`DestinationError`, nothing is marked (2).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.backup.catalog import BackupRecord, list_backups
from railguard.backup.verify import VerifyOutcome
from railguard.backup.naming import stem_for
from railguard.backup.verify import verify_backup
from railguard.config import AppSettings
from railguard.destinations.base import CopyVerifyFailed, Destination, RemoteBackup
from railguard.destinations.configured import open_destination, scratch_beside
from railguard.destinations.generations import GenerationCopies, RemoteGeneration
from railguard.errors import RailguardError, VerifyFailed
from railguard.pages.catalog import GenerationRecord
from railguard.progress import Progress

log = logging.getLogger("railguard.destinations")


def fetch_backup(destination: Destination, backup: RemoteBackup, into: Path, *, now: datetime,
                 identity_file: Path | None = None, progress: Progress | None = None) -> BackupRecord:
    """Download ``backup`` into the private directory ``into`` and return it as the one good
    local backup there. A copy found damaged on the way is marked so at the destination."""
    with marking_damage(destination, backup, now):
        destination.fetch(backup, into, identity_file=identity_file, progress=progress)
        records = [record for record in list_backups(into) if record.name == backup.name]
        if len(records) != 1 or not records[0].is_good:
            raise CopyVerifyFailed(f"destination {destination.name}: {backup.name} does not read as a backup "
                                   f"({records[0].status if records else 'nothing fetched'})",
                                   hint="Pick another with: railguard backups list --dest " + destination.name)
    return records[0]


@contextlib.contextmanager
def marking_damage(destination: Destination, backup: RemoteBackup, now: datetime) -> Iterator[None]:
    """Mark ``backup`` damaged at the destination when the block finds it so.

    Every :class:`VerifyFailed` of a complete copy is a verdict on the copy, except a wrong
    identity (:class:`DecryptFailed`: the bytes are intact). Failing to write the mark (a
    read-only key, the store gone meanwhile) does not replace the verification's own failure:
    it is logged, and added to that failure's hint.
    """
    from railguard.destinations.encryption import DecryptFailed

    try:
        yield
    except VerifyFailed as exc:
        if backup.is_complete and not isinstance(exc, DecryptFailed):
            reason = exc.message.removeprefix(f"destination {destination.name}: ")
            try:
                destination.mark_damaged(backup, reason, now)
            except RailguardError as mark_failed:
                log.warning("destination %s: cannot mark %s as damaged: %s", destination.name, backup.name,
                            mark_failed.message)
                # Said where the reader looks: until marked, ``latest`` there may pick it again.
                exc.hint = (f"{exc.hint} " if exc.hint else "") + (
                    f"It could not be marked damaged there ({mark_failed.message}), so latest may pick it again.")
        raise


def verify_remote(destination: Destination, backup: RemoteBackup, *, now: datetime, mode: str = "integrity",
                  identity_file: Path | None = None, scratch: Path | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Prove one remote copy: download it, check its sha256, and (when it can be read) restore-test it.

    An encrypted copy without an identity is checked against the sha256 of its encrypted bytes
    only (``checked: "checksum"``); with the identity it is decrypted, re-hashed, decompressed
    and integrity-checked like a local backup (``checked: "database"``). A copy that fails is
    marked damaged (:func:`marking_damage`); a marked copy that passes in full is unmarked.
    """
    identity = identity_file or destination.settings.age_identity_file
    if backup.encryption is not None and identity is None:
        with marking_damage(destination, backup, now):
            destination.check_copy(backup, progress)
        return {"name": backup.name, "ok": True, "result": "ok", "checked": "checksum",
                "note": "encrypted: checksum of the stored bytes only; pass --identity to check the database"}
    with tempfile.TemporaryDirectory(prefix="railguard-fetch-", dir=scratch) as work:
        directory = Path(work)
        record = fetch_backup(destination, backup, directory, now=now, identity_file=identity, progress=progress)
        with marking_damage(destination, backup, now):
            outcome = verify_backup(record, directory, mode=mode, progress=progress)
    if backup.damage_key is not None:
        try:
            destination.clear_damage(backup)
        except RailguardError as exc:
            log.warning("destination %s: cannot remove the damage mark of %s: %s", destination.name, backup.name,
                        exc.message)
    return {"name": backup.name, "ok": True, "result": "ok", "checked": "database",
            "seconds": round(outcome.seconds, 3)}


RemoteCopy = RemoteBackup | RemoteGeneration


def choose_remote(destination: Destination, stem: str, which: str | None,
                  choose: Any = None) -> RemoteCopy:
    """The copy ``which`` names at ``destination``: a generation of that name, else a
    whole-file backup; ``latest`` (or None) the newest good of either. ``choose``, when given,
    picks from every copy there (``drill --backup random``)."""
    copies = GenerationCopies(destination, stem)
    generations = copies.held()
    if choose is not None:
        return choose([*destination.list_backups(stem), *generations])  # type: ignore[no-any-return]
    if which in (None, "latest"):
        good: list[RemoteCopy] = [generation for generation in generations if generation.is_good]
        if not good:
            return destination.stat_backup("latest", stem)
        backups = [backup for backup in destination.list_backups(stem) if backup.is_good]
        return max([*good, *backups], key=lambda copy: (copy.created_at, copy.name))
    assert which is not None
    if any(generation.name == which.removesuffix(".generation.json") for generation in generations):
        return copies.resolve(which, generations)
    return destination.stat_backup(which, stem)


def fetch_copy(destination: Destination, stem: str, copy: RemoteCopy, into: Path, *, now: datetime,
               identity_file: Path | None = None, progress: Progress | None = None) -> BackupRecord | GenerationRecord:
    """Fetch ``copy`` into the private directory ``into``, as the one good local backup or
    generation there (:func:`fetch_backup` for a whole-file copy)."""
    if isinstance(copy, RemoteBackup):
        return fetch_backup(destination, copy, into, now=now, identity_file=identity_file, progress=progress)
    copies = GenerationCopies(destination, stem)
    result = copies.fetch([copy], into, identity_file=identity_file, every=copies.held())[copy.name]
    if isinstance(result, CopyVerifyFailed):
        raise result
    return result


def verify_remote_generations(destination: Destination, stem: str, generations: list[RemoteGeneration], *,
                              mode: str = "integrity", identity_file: Path | None = None,
                              scratch: Path | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """``backups verify --dest`` for generations: each object downloaded once into a private
    scratch store, then each generation rebuilt there and checked (:mod:`railguard.pages.verify`).

    An encrypted generation without an identity is checked against the sha256 of its stored
    objects only (``checked: "checksum"``). A damaged or missing object fails every generation
    that needs it, each result naming the object and those generations.
    """
    from railguard.pages.verify import verify_generation

    copies = GenerationCopies(destination, stem)
    every = copies.held()
    identity = identity_file or destination.settings.age_identity_file
    results: list[dict[str, Any]] = []
    readable = []
    for generation in generations:
        if generation.encrypted and identity is None and generation.manifest is not None:
            try:
                copies.check_stored(generation)
            except CopyVerifyFailed as exc:
                results.append(_failed(generation.name, exc))
                continue
            results.append({"name": generation.name, "ok": True, "result": "ok", "checked": "checksum",
                            "note": "encrypted: checksum of the stored objects only; pass --identity to check "
                                    "the database"})
        else:
            readable.append(generation)
    if readable:
        with tempfile.TemporaryDirectory(prefix="railguard-fetch-", dir=scratch) as work:
            fetched = copies.fetch(readable, Path(work), identity_file=identity, every=every)
            for generation in readable:
                record = fetched[generation.name]
                if isinstance(record, CopyVerifyFailed):
                    results.append(_failed(generation.name, record))
                    continue
                outcome: VerifyOutcome = verify_generation(record, Path(work), mode=mode, progress=progress)
                results.append({"name": generation.name, "ok": outcome.ok, "result": outcome.result,
                                "checked": "database", "seconds": round(outcome.seconds or 0.0, 3)} if outcome.ok else
                               {"name": generation.name, "ok": False, "result": f"destination {destination.name}: "
                                f"{outcome.result}", "hint": "The copy there is damaged; restore another generation"
                                " and run: railguard replicate --dest " + destination.name + " --all"})
    order = {generation.name: index for index, generation in enumerate(generations)}
    return sorted(results, key=lambda result: order[result["name"]])


def _failed(name: str, exc: RailguardError) -> dict[str, Any]:
    return {"name": name, "ok": False, "result": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)}


@contextlib.contextmanager
def fetched_for_restore(app: AppSettings, destination_name: str, name: str | None, *, now: datetime,
                        identity_file: Path | None = None, env: Mapping[str, str] | None = None,
                        progress: Progress | None = None) -> Iterator[BackupRecord | GenerationRecord]:
    """``restore --dest``: fetch one remote copy into a temporary directory and yield it as a
    local :class:`BackupRecord` (or :class:`GenerationRecord`, :func:`fetch_copy`), so restore takes exactly the path it takes for local backups
    (sha256, decompress, raw sha256, integrity_check, then the swap). Removed afterwards.
    ``latest`` is the newest good copy: never one marked damaged.
    """
    destination = open_destination(app, destination_name, env)
    stem = stem_for(app.database)
    copy = choose_remote(destination, stem, name or "latest")
    with tempfile.TemporaryDirectory(prefix=".railguard-fetch-", dir=scratch_beside(app.backup.directory)) as work:
        yield fetch_copy(destination, stem, copy, Path(work), now=now, identity_file=identity_file, progress=progress)
