"""``take_backup``: the whole verified backup of one database.

Order of work, and why:

1. Check the source (a regular SQLite file: a FIFO would block the first read) and lock the
   backup directory for this database (one run at a time).
2. Remove temporary files and work directories left by crashed runs, and plaintext copies left
   by a killed ``backups verify`` (we hold the lock, so they are stale).
3. Copy the live database into a private work directory (:class:`railguard.durable.WorkDirectory`,
   0700, files 0600) inside the backup directory (single-step backup API or VACUUM INTO).
4. At the same time, on two threads: integrity_check the raw copy, and compress it into a
   second temporary file (both only read the copy; SQLite and zstd release the GIL).
5. Read the compressed file back and compare with the raw sha256 (it decompresses to exactly
   what was checked).
6. Only then: fsync, write the manifest to a temporary file, give the data file its final name
   without ever replacing one, give the manifest its name, fsync the directory, log one line.
   The manifest is written first because a full disk is most likely to strike there; if it
   cannot get its name, the data file loses its name too: a final-named data file always has
   its manifest (only ``kill -9`` between the two renames leaves one without, which
   ``backups list`` reports as ``incomplete`` and the next prune removes).

A copy that fails its check is moved to ``failed/`` for inspection and never gets a final name.
Any other failure (disk full, interrupted) removes the temporary files, logs a ``failed`` line
and leaves every older backup untouched.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from railguard import __version__
from railguard.backup.compression import compress_file, sha256_of_decompressed, sha256_of_file
from railguard.backup.log import LOG_NAME
from railguard.backup.manifest import DeployOrigin, Manifest
from railguard.backup.naming import FAILED_DIR, BackupId, free_id, logged_file_names, stem_for
from railguard.backup.priority import background_priority, run_in_background
from railguard.backup.snapshot import check_source, take_snapshot
from railguard.backup.verify import check_database, remove_stale_verify_copies
from railguard.config import BackupSettings
from railguard.durable import WorkDirectory, is_temp_name, make_private_directory
from railguard.errors import RailguardError, VerifyFailed
from railguard.locking import exclusive_lock
from railguard.logfmt import append_line
from railguard.progress import Progress, finish, stage_counter

@dataclass
class BackupResult:
    path: Path
    manifest: Manifest
    warnings: list[str]


class BackupDirectoryError(RailguardError):
    pass


def take_backup(
    database: Path,
    settings: BackupSettings,
    *,
    now: datetime,
    tz: str = "UTC",
    progress: Progress | None = None,
    app: str | None = None,
    deploy: DeployOrigin | None = None,
) -> BackupResult:
    """Take one verified backup of ``database`` into ``settings.directory``.

    ``app`` (the app's name under ``[apps]``) goes into the manifest: with ``source`` it says
    whose backup this is (backup.catalog.Owner); None leaves the backup to its source alone.
    ``deploy`` makes it a pre-deploy snapshot: the manifest says which deploy it came before.
    """
    check_source(database)
    directory = settings.directory
    prepare_directory(directory)
    stem = stem_for(database)
    with exclusive_lock(directory / f".{stem}.lock", f"backups of {database}"):
        remove_stale_temporaries(directory, stem)
        remove_stale_verify_copies(directory)
        backup_id = free_id(directory, stem, now.astimezone(ZoneInfo(tz)), logged_file_names(directory / LOG_NAME))
        final = directory / backup_id.data_name(settings.compression)
        started = time.monotonic()
        fields = {"time": now.astimezone(timezone.utc), "database": database, "file": final.name}
        try:
            with WorkDirectory(directory) as workspace:
                manifest, warnings = _copy_check_compress(database, settings, workspace, backup_id, final, now,
                                                          progress)
                manifest.app = app
                manifest.deploy = deploy
                manifest.durations["total"] = round(time.monotonic() - started, 3)
                _publish(workspace, manifest, final, backup_id.manifest_name)
        except BaseException as exc:
            _log_failure(directory, fields, exc, time.monotonic() - started)
            raise explain_failure(exc, database, directory) from exc
        append_line(directory / LOG_NAME, {
            **fields, "result": "ok", "method": manifest.method, "compression": manifest.compression,
            "size_raw": manifest.size_raw, "size_stored": manifest.size_stored, "check": manifest.check,
            "check_result": manifest.check_result, "fk_problems": manifest.foreign_key_problems,
            "wal_bytes": manifest.wal_bytes, **{f"{k}_s": v for k, v in manifest.durations.items()},
        })
        return BackupResult(final, manifest, warnings)


RAW_NAME = "raw.sqlite3"
STORED_NAME = "stored"
MANIFEST_NAME = "manifest.json"


def _publish(workspace: WorkDirectory, manifest: Manifest, final: Path, manifest_name: str) -> None:
    """Manifest written first, then both names; never a final-named data file without its manifest."""
    with os.fdopen(workspace.create(MANIFEST_NAME), "wb") as handle:
        handle.write(manifest.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    stored = STORED_NAME if manifest.compression != "none" else RAW_NAME
    workspace.link_out(stored, workspace.parent_fd, final.name)  # link: never replaces an existing backup
    try:
        workspace.link_out(MANIFEST_NAME, workspace.parent_fd, manifest_name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(final.name, dir_fd=workspace.parent_fd)
            os.fsync(workspace.parent_fd)
        raise


def _copy_check_compress(
    database: Path, settings: BackupSettings, workspace: WorkDirectory, backup_id: BackupId, final: Path,
    now: datetime, progress: Progress | None,
) -> tuple[Manifest, list[str]]:
    # Created 0600 here first: SQLite would create it 0644 & ~umask, and an empty file is a new database.
    raw_fd = workspace.create(RAW_NAME)
    raw = workspace.route(RAW_NAME)
    try:
        snapshot = take_snapshot(database, raw, method=settings.method,
                                 busy_timeout=settings.busy_timeout.total_seconds(), progress=progress)
        if settings.compression == "none":
            os.fsync(raw_fd)  # it is the stored file
    finally:
        os.close(raw_fd)
    # Otherwise the raw copy is only read (from the page cache) and then deleted: flushing its
    # gigabyte to disk would only stall the app's own commits (measured in bench/backup.py).
    size_raw = raw.stat().st_size
    durations = {"copy": round(snapshot.seconds, 3)}

    # The copy above ran at normal priority: it holds a read transaction on the live database,
    # which must stay short. Checking and compressing only touch the copy: the app goes first.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool, background_priority():
        check_future = pool.submit(run_in_background, check_database, raw, settings.check)
        compress_started = time.monotonic()
        if settings.compression == "none":
            raw_sha = stored_sha = sha256_of_file(raw, stage_counter(progress, "hash", size_raw))
            size_stored = size_raw
        else:
            stored = workspace.route(STORED_NAME)
            with os.fdopen(workspace.create(STORED_NAME), "wb") as handle:
                raw_sha, stored_sha, size_stored = compress_file(raw, handle, settings.compression, settings.level,
                                                                 stage_counter(progress, "compress", size_raw))
                os.fsync(handle.fileno())
            # The stored file must decompress to exactly the bytes that were checked.
            if sha256_of_decompressed(stored, settings.compression,
                                      stage_counter(progress, "verify", size_raw)) != raw_sha:
                raise VerifyFailed(f"compressed copy {final.name} does not decompress to the checked database",
                                   hint="Check the disk and memory of this machine; try --compression none")
        durations["compress"] = round(time.monotonic() - compress_started, 3)
        # integrity_check ran meanwhile on the other thread; SQLite cannot say how far it is.
        stage_counter(progress, "check", 0)
        check = check_future.result()
        finish(progress, "check", size_raw)
    durations["check"] = round(check.seconds, 3)

    if not check.ok:
        kept = _keep_aside(workspace, final.parent, backup_id)
        raise VerifyFailed(
            f"the copy of {database} failed {settings.check}_check: {check.summary}; kept aside as {kept}",
            hint="The source database is damaged: inspect it with sqlite3 and restore a good backup",
        )
    warnings = []
    if check.foreign_key_problems:
        warnings.append(f"foreign_key_check found {check.foreign_key_problems} problem(s) in {database}")
    manifest = Manifest(
        name=str(backup_id), file=final.name, source=str(database.absolute()),
        created_at=now.astimezone(timezone.utc).isoformat(timespec="seconds"),
        sqlite_version=sqlite3.sqlite_version, page_size=snapshot.page_size, page_count=snapshot.page_count,
        journal_mode=snapshot.journal_mode, size_raw=size_raw, size_stored=size_stored, sha256=stored_sha,
        raw_sha256=raw_sha, method=settings.method, compression=settings.compression,
        level=settings.level if settings.compression != "none" else None, check=settings.check,
        check_result=check.summary, verified=True, foreign_key_problems=check.foreign_key_problems,
        durations=durations, wal_bytes=snapshot.wal_bytes, railguard_version=__version__,
    )
    return manifest, warnings


def remove_stale_temporaries(directory: Path, stem: str) -> list[Path]:
    """Remove temporary files a crashed run left behind. Call only while holding the lock."""
    removed = []
    for entry in directory.iterdir():
        if is_temp_name(entry.name) and entry.name.startswith(f".{stem}-") and entry.is_file():
            entry.unlink()
            removed.append(entry)
    return removed


def prepare_directory(directory: Path) -> None:
    """Create the backup directory 0700 if missing; a clear error if it is not a writable directory."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupDirectoryError(f"cannot create the backup directory {directory}: {exc.strerror}",
                                   hint="Create it, or choose another with --dir") from None
    if not directory.is_dir():
        raise BackupDirectoryError(f"backup directory {directory} is not a directory", hint="Choose another with --dir")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BackupDirectoryError(f"backup directory {directory} is not writable by this user",
                                   hint="Fix its permissions, or choose another with --dir")


def _keep_aside(workspace: WorkDirectory, directory: Path, backup_id: BackupId) -> Path:
    failed = directory / FAILED_DIR
    make_private_directory(failed)
    failed_fd = os.open(failed, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        workspace.move_out(RAW_NAME, failed_fd, f"{backup_id}.sqlite3")
    finally:
        os.close(failed_fd)
    return failed / f"{backup_id}.sqlite3"


def _log_failure(directory: Path, fields: dict[str, Any], exc: BaseException, seconds: float) -> None:
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__
    with contextlib.suppress(OSError):  # a full disk must not hide the original error
        append_line(directory / LOG_NAME, {**fields, "result": "failed", "total_s": round(seconds, 3),
                                           "error": reason})


def explain_failure(exc: BaseException, database: Path, directory: Path) -> BaseException:
    """The error to show for ``exc`` raised while backing ``database`` up into ``directory``."""
    if isinstance(exc, RailguardError) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "full" in str(exc).lower():
        return BackupDirectoryError(f"no space left in {directory} while writing the backup; older backups are untouched",
                                    hint="Free space there, prune old backups, or choose another --dir")
    if isinstance(exc, OSError):
        return BackupDirectoryError(f"cannot write the backup in {directory}: {exc.strerror or exc}",
                                    hint="Check the directory's permissions and free space")
    if isinstance(exc, sqlite3.Error):
        # SQLite says the same "disk I/O error" for the file it reads and the one it writes.
        return RailguardError(f"SQLite failed while copying {database} into {directory}: {exc}; "
                              f"older backups are untouched",
                              hint=f"Check free space and file size limits in {directory}; if they are fine, check "
                                   f"the database with: sqlite3 {database} 'PRAGMA integrity_check'")
    return exc
