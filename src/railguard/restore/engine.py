"""``restore_backup``: put a verified backup in place of a database, safely.

Order of work, and why:

1. Check the target: not a directory, its directory exists and is writable. Nobody may have
   the database open (:mod:`railguard.restore.holders`) unless ``force``: replacing the file
   under a running app loses what it writes next and can corrupt what it reads.
2. Verify the backup by decompressing it **into the target's directory** (same filesystem, so
   the final rename is atomic): sha256 of the stored file, sha256 of the raw database,
   ``integrity_check``. A backup that fails changes nothing.
3. Put back the source's journal mode (backups are stored in rollback mode; the manifest says
   whether the source ran in WAL), give the file the old database's owner and permissions, fsync.
4. Ask again who has the database open: the app may have been started while we verified.
5. Take a safety copy of the current database, a consistent SQLite copy that includes what is
   still in its ``-wal``: ``<name>.before-restore-YYYYMMDD-HHMMSS``.
6. Checkpoint the old database so its ``-wal`` holds nothing the file lacks, then remove the
   stale ``-wal`` and ``-shm``: a restored file next to an old ``-wal`` would have those pages
   replayed over it. Because of the checkpoint, a crash right after this leaves the old
   database complete.
7. Rename the restored file over the database and fsync the directory. The rename is the one
   moment the target changes: a crash anywhere leaves the old database or the new one, never
   a mix, plus hidden temporary files that the next restore removes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from railguard.backup.catalog import BackupRecord
from railguard.backup.engine import LOG_NAME
from railguard.backup.snapshot import take_snapshot
from railguard.backup.verify import materialize
from railguard.durable import fsync_directory, fsync_file, promote, temp_path_for
from railguard.errors import Busy, NotFound, RailguardError, UsageError, VerifyFailed
from railguard.locking import exclusive_lock
from railguard.logfmt import append_line
from railguard.restore.holders import Holder, find_holders

SAFETY_MARK = ".before-restore-"
_STALE = re.compile(r"^\.(?P<base>.+)\.(?:verify-tmp|tmp)-(?P<pid>\d+)(?:-wal|-shm|-journal)?$")

STOP_APP_HINT = ("Stop the app first (CapRover: set the app's instance count to 0, or docker stop its container), "
                 "then run the restore again; --force replaces it anyway")


class RestoreTargetIsDirectory(UsageError):
    pass


class RestoreTargetNotWritable(RailguardError):
    pass


class RestoreNoSpace(RailguardError):
    pass


class DatabaseInUse(Busy):
    pass


@dataclass
class RestoreResult:
    backup: str
    target: Path
    #: The consistent copy of the database that was replaced (None if there was none).
    safety_copy: Path | None
    journal_mode: str
    replaced: bool
    forced_past: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def restore_backup(record: BackupRecord, target: Path, *, now: datetime, tz: str = "UTC", force: bool = False,
                   check: str = "integrity", busy_timeout: float = 30.0,
                   log_directory: Path | None = None) -> RestoreResult:
    """Replace (or create) the database ``target`` with the verified contents of ``record``.

    The restore is logged in ``log_directory``'s backup.log (default: the backup's own
    directory; a copy fetched from a destination lives in a temporary one).
    """
    started = time.monotonic()
    target = _check_target(Path(target))
    directory = target.parent
    remove_stale_restore_files(directory, target)
    forced_past = _refuse_if_in_use(target, force)
    with _backup_lock(record):
        try:
            result = _restore(record, target, now=now, tz=tz, force=force, check=check, busy_timeout=busy_timeout)
        except BaseException as exc:
            explained = _explain(exc, target)
            if explained is exc:
                raise
            raise explained from exc
    result.forced_past = sorted(set(forced_past) | set(result.forced_past))
    result.seconds = time.monotonic() - started
    _log(log_directory or record.directory, record, target, result, now)
    return result


def _restore(record: BackupRecord, target: Path, *, now: datetime, tz: str, force: bool, check: str,
             busy_timeout: float) -> RestoreResult:
    directory = target.parent
    journal_mode = (record.manifest.journal_mode if record.manifest else "delete").lower()
    with materialize(record, directory, mode=check) as copy:
        if journal_mode == "wal":
            _set_wal(copy.path)
        if target.exists():
            _copy_ownership(target, copy.path)
        fsync_file(copy.path)

        forced_past = _refuse_if_in_use(target, force)
        safety = None
        warnings: list[str] = []
        if target.exists():
            safety, note = _safety_copy(target, now, tz, busy_timeout)
            if note:
                warnings.append(note)
            problem = _checkpoint(target, busy_timeout)
            if problem:
                warnings.append(f"could not checkpoint {target.name} ({problem}): what was only in its -wal is in "
                                f"the safety copy {safety.name}")
        for stale in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        os.replace(copy.path, target)
        fsync_directory(directory)
    return RestoreResult(record.name, target, safety, journal_mode, replaced=safety is not None,
                         forced_past=forced_past, warnings=warnings)


def _check_target(target: Path) -> Path:
    if target.is_dir():
        raise RestoreTargetIsDirectory(f"{target} is a directory, not a database file",
                                       hint=f"Give the database's file path, e.g. --to {target / 'tasks.db'}")
    target = target.parent.resolve() / target.name if not target.is_symlink() else target.resolve()
    directory = target.parent
    if not directory.is_dir():
        raise NotFound(f"directory {directory} does not exist", hint=f"Create it first: mkdir -p {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise RestoreTargetNotWritable(f"cannot write in {directory}: permission denied or read-only filesystem",
                                       hint="Run as the app's user (or root), or restore --to a writable path")
    return target


def _refuse_if_in_use(target: Path, force: bool) -> list[str]:
    holders = find_holders(target)
    if holders and not force:
        raise DatabaseInUse(f"{target} is in use: {_describe(holders)}", hint=STOP_APP_HINT)
    return [str(holder) for holder in holders]


def _describe(holders: list[Holder]) -> str:
    return "; ".join(str(holder) for holder in holders[:3]) + (f" (and {len(holders) - 3} more)"
                                                               if len(holders) > 3 else "")


@contextlib.contextmanager
def _backup_lock(record: BackupRecord) -> Iterator[None]:
    """Hold the backup directory's lock so a prune cannot remove the backup while we read it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(record.directory / f".{record.id.stem}.lock",
                                               f"backups of {record.id.stem} in {record.directory}"))
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            # A read-only backup directory: nobody can prune it either.
        yield


def _set_wal(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    finally:
        connection.close()  # the last connection: SQLite checkpoints and removes path-wal and path-shm
    if mode.lower() != "wal":
        raise RailguardError(f"could not put {path.name} back in WAL mode (SQLite answered {mode})")


def _copy_ownership(old: Path, new: Path) -> None:
    """The app must still be able to open its database when railguard runs as another user."""
    info = old.stat()
    os.chmod(new, info.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.chown(new, info.st_uid, info.st_gid)


def safety_copy_path(target: Path, now: datetime, tz: str) -> Path:
    stamp = now.astimezone(ZoneInfo(tz)).strftime("%Y%m%d-%H%M%S")
    candidate = target.with_name(f"{target.name}{SAFETY_MARK}{stamp}")
    seq = 2
    while candidate.exists():
        candidate = target.with_name(f"{target.name}{SAFETY_MARK}{stamp}-{seq}")
        seq += 1
    return candidate


def _safety_copy(target: Path, now: datetime, tz: str, busy_timeout: float) -> tuple[Path, str | None]:
    """A consistent copy of the current database; a byte copy when SQLite cannot read it."""
    final = safety_copy_path(target, now, tz)
    temp = temp_path_for(final)
    try:
        take_snapshot(target, temp, method="backup-api", busy_timeout=busy_timeout)
        os.chmod(temp, 0o600)
        fsync_file(temp)
        promote(temp, final)
        return final, None
    except (sqlite3.DatabaseError, RailguardError) as exc:
        if _is_disk_full(exc) or isinstance(exc, Busy):
            raise
        _remove_quietly(temp)
        # A damaged database is the usual reason to restore: keep its bytes (and its -wal) as they are.
        note = f"{target.name} could not be read by SQLite ({exc}); kept a byte copy instead"
        for suffix in ("", "-wal"):
            source = target.with_name(target.name + suffix)
            if source.exists():
                temp = temp_path_for(final.with_name(final.name + suffix))
                shutil.copyfile(source, temp)
                os.chmod(temp, 0o600)
                fsync_file(temp)
                promote(temp, final.with_name(final.name + suffix))
        return final, note
    finally:
        _remove_quietly(temp)


def _checkpoint(target: Path, busy_timeout: float) -> str | None:
    """Fold the old database's -wal into its file; None when nothing is left only in the -wal."""
    if not target.with_name(target.name + "-wal").exists():
        return None
    try:
        connection = sqlite3.connect(target, timeout=min(busy_timeout, 5.0), isolation_level=None)
        try:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return "another connection is still using it" if busy else None


def remove_stale_restore_files(directory: Path, target: Path) -> list[Path]:
    """Hidden temporary files of restores that were killed (their process is gone)."""
    removed = []
    safety_prefix = f"{target.name}{SAFETY_MARK}"
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            match = _STALE.match(entry.name)
            if not match or _alive(int(match["pid"])):
                continue
            base = match["base"]
            if (".sqlite3" in base and SAFETY_MARK not in base) or base.startswith(safety_prefix):
                _remove_quietly(entry)
                removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _is_disk_full(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
                                               or "disk is full" in str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _explain(exc: BaseException, target: Path) -> BaseException:
    if _is_disk_full(exc):
        return RestoreNoSpace(f"no space left in {target.parent} while restoring; {target.name} is unchanged",
                              hint="Free space there (the restored copy and the safety copy each need about "
                                   "the database's size), or restore --to another disk")
    chain = exc.__cause__ if isinstance(exc, VerifyFailed) else exc
    if isinstance(chain, OSError) and chain.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RestoreTargetNotWritable(f"cannot write in {target.parent}: {chain.strerror}; {target.name} is unchanged",
                                        hint="Run as the app's user (or root), or restore --to a writable path")
    if isinstance(exc, RailguardError) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, OSError):
        return RailguardError(f"restore into {target} failed: {exc.strerror or exc}; {target.name} is unchanged",
                              hint="Check the directory's permissions and free space")
    if isinstance(exc, sqlite3.Error):
        return RailguardError(f"SQLite failed while restoring {target}: {exc}; {target.name} is unchanged")
    return exc


def _log(directory: Path, record: BackupRecord, target: Path, result: RestoreResult, now: datetime) -> None:
    with contextlib.suppress(OSError):  # a read-only backup directory must not fail a finished restore
        append_line(directory / LOG_NAME, {
            "time": now.astimezone(timezone.utc), "event": "restore", "backup": record.name, "target": target,
            "safety_copy": result.safety_copy.name if result.safety_copy else None,
            "journal_mode": result.journal_mode, "forced": bool(result.forced_past), "result": "ok",
            "total_s": round(result.seconds, 3),
        })
