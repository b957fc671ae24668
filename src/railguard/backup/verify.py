"""Checking a database copy, and proving that a stored backup restores.

``PRAGMA integrity_check`` checks b-trees, records, indexes against tables and constraints;
``quick_check`` skips the index checks and is ~10x faster. Neither checks foreign keys, so
``foreign_key_check`` runs too and its findings are reported as a warning (an app may
legitimately run with foreign keys off).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from railguard.backup.catalog import BackupRecord
from railguard.backup.compression import decompress_to, sha256_of_file
from railguard.backup.snapshot import open_readonly
from railguard.errors import VerifyFailed

MAX_PROBLEMS = 20
# The copy is ours alone while it is checked: a larger page cache makes integrity_check
# markedly faster, and stays well under the memory budget (negative = KiB).
CHECK_CACHE_KIB = 65536


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
    """A backup decompressed to ``path`` and checked end to end."""

    record: BackupRecord
    path: Path
    check: CheckResult


@contextlib.contextmanager
def materialize(record: BackupRecord, into: Path, *, mode: str = "integrity") -> Iterator[VerifiedCopy]:
    """Verify ``record`` and yield its raw database as a file in the directory ``into``.

    Checks, in order: a manifest exists, the stored file's sha256 matches it, the file
    decompresses, the raw sha256 matches, and integrity_check passes. Any failure raises
    :class:`VerifyFailed` naming the step. The raw file is removed when the block exits unless
    the caller moved it away (restore renames it into place).
    """
    manifest = record.manifest
    if manifest is None or record.data_path is None:
        raise VerifyFailed(f"backup {record.name} is {record.status}: it has no "
                           f"{'manifest' if manifest is None else 'data file'}",
                           hint="It cannot be trusted; take a new backup")
    actual = sha256_of_file(record.data_path)
    if actual != manifest.sha256:
        raise VerifyFailed(f"backup {record.name}: sha256 mismatch (stored file changed since it was written)",
                           hint="The file is damaged (bit rot or tampering); restore another backup")
    raw = into / f".{record.name}.sqlite3.verify-tmp-{os.getpid()}"
    try:
        with raw.open("wb") as handle:
            try:
                raw_sha = decompress_to(record.data_path, manifest.compression, handle)
            except Exception as exc:  # zstd/gzip raise several unrelated types for damaged input
                raise VerifyFailed(f"backup {record.name}: does not decompress ({exc})",
                                   hint="The file is damaged; restore another backup") from exc
            handle.flush()
            os.fsync(handle.fileno())
        if raw_sha != manifest.raw_sha256:
            raise VerifyFailed(f"backup {record.name}: decompressed data does not match the manifest",
                               hint="The file is damaged; restore another backup")
        check = check_database(raw, mode)
        if not check.ok:
            raise VerifyFailed(f"backup {record.name}: {mode}_check failed: {check.summary}",
                               hint="The copy is damaged; restore another backup")
        yield VerifiedCopy(record, raw, check)
    finally:
        with contextlib.suppress(FileNotFoundError):
            raw.unlink()


def verify_backup(record: BackupRecord, scratch: Path, *, mode: str = "integrity") -> CheckResult:
    """Verify a stored backup end to end; raises :class:`VerifyFailed`."""
    with materialize(record, scratch, mode=mode) as copy:
        return copy.check
