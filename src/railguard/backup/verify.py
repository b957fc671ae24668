"""Checking a database copy, and proving that a stored backup restores.

``PRAGMA integrity_check`` checks b-trees, records, indexes against tables and constraints;
``quick_check`` skips the index checks and is ~10x faster. Neither checks foreign keys, so
``foreign_key_check`` runs too and its findings are reported as a warning (an app may
legitimately run with foreign keys off).

The decompressed copy is plaintext the size of the database: it is made 0600 inside a private
:class:`~railguard.durable.WorkDirectory` (the directory it goes in may be writable by the app's
user, and a planted link must never be followed), removed when the block exits, and removed by
the next run if this one was killed (:func:`remove_stale_verify_copies`).

The stored file is opened once and hashed and decompressed through that one descriptor: a
prune that removes it meanwhile cannot make the check fail half-way; one that removed it
before raises :class:`BackupVanished`.

:func:`verify_backups` is ``railguard backups verify``: one backup or every one, each result
reported and none stopping the others; a backup that a prune removed between the listing and
its turn is "gone", not a failure.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from railguard.backup.catalog import BackupRecord, Owner, list_backups, resolve_backup
from railguard.backup.compression import CHUNK, decompress_stream_to
from railguard.backup.snapshot import open_readonly
from railguard.durable import WorkDirectory, pid_is_alive, remove_stale_work_directories
from railguard.errors import NotFound, RailguardError, VerifyFailed
from railguard.progress import Progress, finish, stage_counter

MAX_PROBLEMS = 20
# The copy is ours alone while it is checked: a larger page cache makes integrity_check
# markedly faster, and stays well under the memory budget (negative = KiB).
CHECK_CACHE_KIB = 65536
#: The plaintext copies railguard 0.x left in place (``.NAME.sqlite3.verify-tmp-PID``).
_LEGACY_COPY = re.compile(r"^\..+\.verify-tmp-(?P<pid>\d+)$")


class VerifySpaceError(RailguardError):
    """The disk filled up while the backup was decompressed: the backup may well be fine."""


class BackupVanished(NotFound):
    """The backup's file was removed (by a prune, or by hand) after it was listed."""


@dataclass
class CheckResult:
    ok: bool
    problems: list[str]
    foreign_key_problems: int
    seconds: float

    @property
    def summary(self) -> str:
        return "ok" if self.ok else self.problems[0]


def check_database(path: Path, mode: str = "integrity") -> CheckResult:
    """Run integrity_check (or quick_check) and foreign_key_check on a copy nobody else writes."""
    started = time.monotonic()
    pragma = "quick_check" if mode == "quick" else "integrity_check"
    try:
        connection = open_readonly(path, immutable=True)
        try:
            connection.execute(f"PRAGMA cache_size=-{CHECK_CACHE_KIB}")
            rows = [row[0] for row in connection.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})")]
            fk_problems = len(connection.execute("PRAGMA foreign_key_check").fetchall())
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        return CheckResult(False, [f"cannot be read as a database: {exc}"], 0, time.monotonic() - started)
    ok = rows == ["ok"]
    # A row may hold several lines, led by a "*** in database main ***" header: keep the findings.
    problems = [line for row in rows for line in str(row).splitlines() if line and not line.startswith("*** ")]
    return CheckResult(ok, [] if ok else problems or rows, fk_problems, time.monotonic() - started)


@dataclass
class VerifiedCopy:
    """A backup decompressed and checked end to end: ``name`` inside ``workspace``.

    ``path`` is the route SQLite can open (see :meth:`WorkDirectory.route`).
    """

    record: BackupRecord
    path: Path
    check: CheckResult
    workspace: WorkDirectory
    name: str


@contextlib.contextmanager
def materialize(record: BackupRecord, into: Path, *, mode: str = "integrity",
                progress: Progress | None = None) -> Iterator[VerifiedCopy]:
    """Verify ``record`` and yield its raw database as a private file in a work directory in ``into``.

    Checks, in order: a manifest exists, the stored file's sha256 matches it, the file
    decompresses, the raw sha256 matches, and integrity_check passes. Any failure raises
    :class:`VerifyFailed` naming the step. The raw file is removed when the block exits unless
    the caller moved it away (restore renames it into place).

    ``progress`` gets three stages: ``read`` (the stored file, hashed), ``decompress`` (the raw
    database written out) and ``check`` (no measure while it runs; done once it passed).
    """
    manifest = record.manifest
    if manifest is None or record.data_path is None:
        raise VerifyFailed(f"backup {record.name} is {record.status}: it has no "
                           f"{'manifest' if manifest is None else 'data file'}",
                           hint="It cannot be trusted; take a new backup")
    try:
        stored = record.data_path.open("rb")
    except FileNotFoundError:
        raise BackupVanished(f"backup {record.name} was removed while it was being verified "
                             f"(a prune ran meanwhile)", hint="List what is left: railguard backups list") from None
    remove_stale_verify_copies(into)
    with stored, WorkDirectory(into) as workspace:
        _check_stored_sha256(record, stored, stage_counter(progress, "read", os.fstat(stored.fileno()).st_size))
        name = f"{record.name}.sqlite3"
        with os.fdopen(workspace.create(name), "wb") as handle:
            try:
                raw_sha = decompress_stream_to(stored, manifest.compression, handle,
                                               stage_counter(progress, "decompress", manifest.size_raw))
            except Exception as exc:  # zstd/gzip raise several unrelated types for damaged input
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise VerifySpaceError(f"no space left in {into} for the decompressed copy of {record.name}",
                                           hint="Free space there (the copy needs the database's size)") from exc
                raise VerifyFailed(f"backup {record.name}: does not decompress ({exc})",
                                   hint="The file is damaged; restore another backup") from exc
            handle.flush()
            os.fsync(handle.fileno())
        if raw_sha != manifest.raw_sha256:
            raise VerifyFailed(f"backup {record.name}: decompressed data does not match the manifest",
                               hint="The file is damaged; restore another backup")
        route = workspace.route(name)
        stage_counter(progress, "check", 0)
        check = check_database(route, mode)
        if not check.ok:
            raise VerifyFailed(f"backup {record.name}: {mode}_check failed: {check.summary}",
                               hint="The copy is damaged; restore another backup")
        finish(progress, "check", manifest.size_raw)
        yield VerifiedCopy(record, route, check, workspace, name)


def _check_stored_sha256(record: BackupRecord, stored: BinaryIO, count: Callable[[int], None] | None) -> None:
    digest = hashlib.sha256()
    while chunk := stored.read(CHUNK):
        digest.update(chunk)
        if count:
            count(len(chunk))
    stored.seek(0)
    assert record.manifest is not None
    if digest.hexdigest() != record.manifest.sha256:
        raise VerifyFailed(f"backup {record.name}: sha256 mismatch (stored file changed since it was written)",
                           hint="The file is damaged (bit rot or tampering); restore another backup")


def remove_stale_verify_copies(directory: Path) -> list[Path]:
    """Remove the decompressed copies that killed runs left in ``directory``; safe without a lock."""
    removed = remove_stale_work_directories(directory)
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            match = _LEGACY_COPY.match(entry.name)
            if match and not pid_is_alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                        os.unlink(entry.path)  # unlink never follows a link
                        removed.append(Path(entry.path))
    return removed


def verify_backup(record: BackupRecord, scratch: Path, *, mode: str = "integrity",
                  progress: Progress | None = None) -> CheckResult:
    """Verify a stored backup end to end; raises :class:`VerifyFailed`."""
    with materialize(record, scratch, mode=mode, progress=progress) as copy:
        return copy.check


@dataclass(frozen=True)
class VerifyOutcome:
    """One backup's verification: ``result`` is ``ok``, ``gone`` (removed by a prune after it
    was listed: nothing left to verify, nothing wrong) or what failed."""

    name: str
    ok: bool
    result: str
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "ok": self.ok, "result": self.result}
        if self.seconds is not None:
            document["seconds"] = round(self.seconds, 3)
        return document


def verify_backups(directory: Path, owner: str | Owner | None, name: str | None, *, every: bool = False,
                   mode: str = "integrity", progress: Progress | None = None) -> list[VerifyOutcome]:
    """Verify backup ``name`` (``latest`` or None: the newest good one), or with ``every`` each
    backup of ``owner`` in ``directory``; one that fails never stops the others.

    A single named backup that is missing, or removed while verified, raises (NotFound); with
    ``every`` it is reported as gone. The copy is decompressed next to the backups (same disk,
    sized for them) when this process may write there, else in a private temporary directory.
    ``progress`` gets each backup's stages (:func:`verify_backup`), one backup after another.
    """
    records = list_backups(directory, owner) if every else [resolve_backup(directory, owner, name)]
    outcomes: list[VerifyOutcome] = []
    with tempfile.TemporaryDirectory(prefix="railguard-verify-") as fallback:
        for record in records:
            scratch = record.directory if os.access(record.directory, os.W_OK) else Path(fallback)
            try:
                check = verify_backup(record, scratch, mode=mode, progress=progress)
                outcomes.append(VerifyOutcome(record.name, True, "ok", check.seconds))
            except BackupVanished:
                if not every:
                    raise
                outcomes.append(VerifyOutcome(record.name, True, "gone"))
            except RailguardError as exc:
                outcomes.append(VerifyOutcome(record.name, False, exc.message))
    return outcomes
