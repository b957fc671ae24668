"""Reading copies back: verify one where it is, or fetch one for ``restore --dest`` / ``drill --dest``.

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
from railguard.backup.naming import stem_for
from railguard.backup.verify import verify_backup
from railguard.config import AppSettings
from railguard.destinations.base import CopyVerifyFailed, Destination, RemoteBackup
from railguard.destinations.configured import open_destination, scratch_beside
from railguard.errors import RailguardError, VerifyFailed
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


@contextlib.contextmanager
def fetched_for_restore(app: AppSettings, destination_name: str, name: str | None, *, now: datetime,
                        identity_file: Path | None = None, env: Mapping[str, str] | None = None,
                        progress: Progress | None = None) -> Iterator[BackupRecord]:
    """``restore --dest``: fetch one remote copy into a temporary directory and yield it as a
    local :class:`BackupRecord`, so restore takes exactly the path it takes for local backups
    (sha256, decompress, raw sha256, integrity_check, then the swap). Removed afterwards.
    ``latest`` is the newest good copy: never one marked damaged.
    """
    destination = open_destination(app, destination_name, env)
    backup = destination.stat_backup(name or "latest", stem_for(app.database))
    with tempfile.TemporaryDirectory(prefix=".railguard-fetch-", dir=scratch_beside(app.backup.directory)) as work:
        yield fetch_backup(destination, backup, Path(work), now=now, identity_file=identity_file, progress=progress)
