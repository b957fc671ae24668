"""``restore_backup``: put a verified backup in place of a database, safely.

Order of work, and why:

1. Check the target: a regular file or nothing (a FIFO would block every open), not reached
   through a link that another user owns, its directory exists and is writable. Nobody may have
   the database open (:mod:`railguard.restore.holders`) unless ``force``: replacing the file
   under a running app loses what it writes next and can corrupt what it reads.
2. Verify the backup by decompressing it into a private work directory **inside the target's
   directory** (same filesystem, so the final rename is atomic): sha256 of the stored file,
   sha256 of the raw database, ``integrity_check``. A backup that fails changes nothing.
   A page generation (:func:`restore_generation`, docs/pages.md) is instead rebuilt there from
   its page store and checked the same way (every page's hash, the file's sha256,
   ``integrity_check``); every later step is the same code for both kinds.
3. Put back the source's journal mode (backups are stored in rollback mode; the manifest says
   whether the source ran in WAL), give the file the old database's owner and permissions, fsync.
4. Ask again who has the database open: the app may have been started while we verified.
5. Checkpoint the old database so its ``-wal`` holds nothing the file lacks.
6. Take a safety copy of the current database, ``<name>.before-restore-YYYYMMDD-HHMMSS``: its
   bytes (and its ``-wal``'s, when the checkpoint could not empty it), read while a SQLite read
   transaction keeps writers from changing them; a damaged database is copied as it is.
7. Remove the stale ``-wal`` and ``-shm``: a restored file next to an old ``-wal`` would have
   those pages replayed over it. Because of the checkpoint, a crash right after this leaves the
   old database complete.
8. Rename the restored file over the database and fsync the directory. The rename is the one
   moment the target changes: a crash anywhere leaves the old database or the new one, never
   a mix, plus a hidden work directory that the next restore removes.

The database's directory belongs to the app's user, and a restore usually runs as root: every
file is created in the work directory (:class:`railguard.durable.WorkDirectory`, 0700,
``O_CREAT|O_EXCL|O_NOFOLLOW``), its owner and mode are set through its descriptor, and it
reaches its final name by ``renameat``/``linkat`` from that directory's descriptor. No SQLite
connection ever writes a new file here: the WAL flag is two header bytes, written through the
descriptor, and the safety copy is a byte copy. A ``-wal`` or ``-shm`` that is a link is refused
before SQLite opens the old database, because SQLite would follow it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from railguard.backup.catalog import BackupRecord
from railguard.backup.log import LOG_NAME
from railguard.backup.snapshot import DatabaseBusy, is_busy
from railguard.backup.verify import materialize
from railguard.durable import WorkDirectory, pid_is_alive, remove_stale_work_directories
from railguard.errors import Busy, NotFound, RailguardError, UsageError, VerifyFailed
from railguard.locking import exclusive_lock
from railguard.logfmt import append_line
from railguard.pages.catalog import GenerationRecord
from railguard.pages.rebuild import rebuild_generation
from railguard.progress import Progress, finish, stage_counter
from railguard.restore.holders import Holder, find_holders

SAFETY_MARK = ".before-restore-"
MAX_SAFETY_COPIES = 1000
_STALE = re.compile(r"^\.(?P<base>.+)\.(?:verify-tmp|tmp)-(?P<pid>\d+)(?:-wal|-shm|-journal)?$")

NOT_A_FILE_HINT = ("Point the configuration (apps.NAME.database) or --to at the database file itself, "
                   "a regular file or a path that does not exist yet")
STOP_APP_HINT = ("Stop the app first (CapRover: set the app's instance count to 0, or docker stop its container), "
                 "then run the restore again; --force replaces it anyway")


class RestoreTargetIsDirectory(UsageError):
    pass


class RestoreTargetNotWritable(RailguardError):
    pass


class RestoreTargetUnsafe(UsageError):
    """The target (or a file SQLite would open beside it) is not a plain file railguard may write."""


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


class _Materialized(Protocol):
    """A verified copy in a private work directory: a whole-file backup decompressed, or a generation rebuilt."""

    @property
    def workspace(self) -> WorkDirectory: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class _Source:
    """What a restore needs of a backup, whatever its kind: one restore path for both."""

    name: str
    directory: Path  # the backup directory: its lock, and its backup.log
    stem: str
    journal_mode: str
    #: ``(into, check mode, progress)`` -> the verified copy, made inside ``into``.
    materialize: Callable[[Path, str, Progress | None], contextlib.AbstractContextManager[_Materialized]]


def restore_backup(record: BackupRecord, target: Path, *, now: datetime, tz: str = "UTC", force: bool = False,
                   check: str = "integrity", busy_timeout: float = 30.0,
                   log_directory: Path | None = None, progress: Progress | None = None) -> RestoreResult:
    """Replace (or create) the database ``target`` with the verified contents of ``record``.

    The restore is logged in ``log_directory``'s backup.log (default: the backup's own
    directory; a copy fetched from a destination lives in a temporary one). ``progress`` gets
    the verification's stages (``read``, ``decompress``, ``check``), then ``safety-copy`` when
    there is a database to replace.
    """
    source = _Source(record.name, record.directory, record.id.stem,
                     (record.manifest.journal_mode if record.manifest else "delete").lower(),
                     lambda into, mode, progress: materialize(record, into, mode=mode, progress=progress))
    return _run(source, target, now=now, tz=tz, force=force, check=check, busy_timeout=busy_timeout,
                log_directory=log_directory, progress=progress)


def restore_generation(generation: GenerationRecord, target: Path, *, now: datetime, tz: str = "UTC",
                       force: bool = False, check: str = "integrity", busy_timeout: float = 30.0,
                       progress: Progress | None = None) -> RestoreResult:
    """:func:`restore_backup` for a page generation (docs/pages.md): the same steps, the same safety.

    The generation is rebuilt from its store into the work directory in the target's directory
    and checked there (:func:`railguard.pages.rebuild.rebuild_generation`); ``progress`` gets
    ``rebuild`` and ``check``, then ``safety-copy``.
    """
    manifest = generation.manifest
    if manifest is None or not generation.is_good:
        raise VerifyFailed(f"generation {generation.name} is {generation.reason}",
                           hint="It cannot be trusted; restore another generation")
    source = _Source(generation.name, generation.directory, generation.id.stem, manifest.journal_mode.lower(),
                     lambda into, mode, progress: rebuild_generation(generation.store, manifest, into, mode=mode,
                                                                     progress=progress))
    return _run(source, target, now=now, tz=tz, force=force, check=check, busy_timeout=busy_timeout,
                log_directory=None, progress=progress)


def _run(source: _Source, target: Path, *, now: datetime, tz: str, force: bool, check: str, busy_timeout: float,
         log_directory: Path | None, progress: Progress | None) -> RestoreResult:
    started = time.monotonic()
    target = _check_target(Path(target))
    directory = target.parent
    remove_stale_restore_files(directory, target)
    forced_past = _refuse_if_in_use(target, force)
    with _backup_lock(source):
        try:
            result = _restore(source, target, now=now, tz=tz, force=force, check=check, busy_timeout=busy_timeout,
                              progress=progress)
        except BaseException as exc:
            explained = _explain(exc, target)
            if explained is exc:
                raise
            raise explained from exc
    result.forced_past = sorted(set(forced_past) | set(result.forced_past))
    result.seconds = time.monotonic() - started
    _log(log_directory or source.directory, source, target, result, now)
    return result


def _restore(source: _Source, target: Path, *, now: datetime, tz: str, force: bool, check: str,
             busy_timeout: float, progress: Progress | None = None) -> RestoreResult:
    directory = target.parent
    journal_mode = source.journal_mode
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with source.materialize(directory, check, progress) as copy:
            _prepare(copy.workspace, copy.name, journal_mode, _existing(target))

            forced_past = _refuse_if_in_use(target, force)
            safety = None
            warnings: list[str] = []
            if _existing(target) is not None:
                _refuse_linked_companions(target)
                problem = _checkpoint(target, busy_timeout)
                safety, note = _safety_copy(target, copy.workspace, directory_fd, now, tz, busy_timeout, progress)
                if note:
                    warnings.append(note)
                if problem:
                    warnings.append(f"could not checkpoint {target.name} ({problem}): what was only in its -wal is "
                                    f"in the safety copy {safety.name}")
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target.name + suffix, dir_fd=directory_fd)  # unlink never follows a link
            copy.workspace.move_out(copy.name, directory_fd, target.name)
    finally:
        os.close(directory_fd)
    return RestoreResult(source.name, target, safety, journal_mode, replaced=safety is not None,
                         forced_past=forced_past, warnings=warnings)


def _prepare(workspace: WorkDirectory, name: str, journal_mode: str, old: os.stat_result | None) -> None:
    """Journal mode, owner and permissions of the restored copy, all through its descriptor; fsync."""
    fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=workspace.fd)
    try:
        if journal_mode == "wal":
            _set_wal(fd, name)
        if old is not None:
            # The app must still be able to open its database when railguard runs as another user.
            os.fchmod(fd, old.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.fchown(fd, old.st_uid, old.st_gid)
        os.fsync(fd)
    finally:
        os.close(fd)


def _existing(target: Path) -> os.stat_result | None:
    """The target's own metadata (never a link's target), None when there is no database yet."""
    try:
        info = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise RestoreTargetUnsafe(f"{target} is not a regular file", hint=NOT_A_FILE_HINT)
    return info


def _check_target(target: Path) -> Path:
    if target.is_dir():
        raise RestoreTargetIsDirectory(f"{target} is a directory, not a database file",
                                       hint=f"Give the database's file path, e.g. --to {target / 'tasks.db'}")
    if target.is_symlink():
        # A link that another user made could point anywhere (/etc/shadow): follow only our own, or root's.
        owner = os.lstat(target).st_uid
        if owner not in (0, os.geteuid()):
            raise RestoreTargetUnsafe(f"{target} is a symbolic link owned by uid {owner}; railguard will not "
                                      f"follow another user's link", hint=NOT_A_FILE_HINT)
        target = target.resolve()
    else:
        target = target.parent.resolve() / target.name
    directory = target.parent
    if not directory.is_dir():
        raise NotFound(f"directory {directory} does not exist", hint=f"Create it first: mkdir -p {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise RestoreTargetNotWritable(f"cannot write in {directory}: permission denied or read-only filesystem",
                                       hint="Run as the app's user (or root), or restore --to a writable path")
    _existing(target)
    return target


def check_not_in_use(target: Path, *, force: bool = False) -> list[str]:
    """Refuse (DatabaseInUse, exit 5) while a process has ``target`` open, unless ``force``:
    the check :func:`restore_backup` makes first, for a caller that must know before it changes
    anything else (``rollback --with-data`` asks before it rolls back the image). Returns the
    holders that ``force`` went past."""
    return _refuse_if_in_use(Path(target).absolute(), force)


def _refuse_if_in_use(target: Path, force: bool) -> list[str]:
    holders = find_holders(target)
    if holders and not force:
        raise DatabaseInUse(f"{target} is in use: {_describe(holders)}", hint=STOP_APP_HINT)
    return [str(holder) for holder in holders]


def _describe(holders: list[Holder]) -> str:
    return "; ".join(str(holder) for holder in holders[:3]) + (f" (and {len(holders) - 3} more)"
                                                               if len(holders) > 3 else "")


@contextlib.contextmanager
def _backup_lock(source: _Source) -> Iterator[None]:
    """Hold the backup directory's lock so a prune cannot remove the backup while we read it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(source.directory / f".{source.stem}.lock",
                                               f"backups of {source.stem} in {source.directory}"))
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            # A read-only backup directory: nobody can prune it either.
        yield


#: Offsets 18 and 19 of the database header, the file format write and read versions: "1 for
#: legacy; 2 for WAL" (sqlite.org/fileformat2.html, 1.3.3). ``PRAGMA journal_mode=WAL`` stores
#: exactly these two bytes (btree.c, sqlite3BtreeSetVersion); writing them through our own
#: descriptor means no SQLite connection has to open, by path, a file in someone else's directory.
WAL_VERSION_OFFSET = 18
WAL_VERSION = b"\x02\x02"


def _set_wal(fd: int, name: str) -> None:
    os.pwrite(fd, WAL_VERSION, WAL_VERSION_OFFSET)
    if os.pread(fd, 2, WAL_VERSION_OFFSET) != WAL_VERSION:
        raise RailguardError(f"could not put {name} back in WAL mode")


def safety_copy_path(target: Path, now: datetime, tz: str, seq: int = 1) -> Path:
    stamp = now.astimezone(ZoneInfo(tz)).strftime("%Y%m%d-%H%M%S")
    return target.with_name(f"{target.name}{SAFETY_MARK}{stamp}" + (f"-{seq}" if seq > 1 else ""))


def _safety_copy(target: Path, workspace: WorkDirectory, directory_fd: int, now: datetime, tz: str,
                 busy_timeout: float, progress: Progress | None = None) -> tuple[Path, str | None]:
    """A copy of the current database (and of its -wal if it still holds anything), 0600.

    The bytes are read while a SQLite read transaction is open: in rollback mode it keeps
    writers out of the file, in WAL mode it keeps checkpoints from writing into it (a
    checkpoint needs read-lock 0, wal.c walCheckpoint). A database SQLite cannot read is the
    usual reason to restore: its bytes are kept as they are.
    """
    note = None
    reader: sqlite3.Connection | None = None
    try:
        reader = sqlite3.connect(target, timeout=busy_timeout, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        if reader is not None:
            reader.close()
            reader = None
        if is_busy(exc):
            raise DatabaseBusy(f"database {target} stayed locked", hint="Retry later, or stop the app first") from exc
        note = f"{target.name} could not be read by SQLite ({exc}); kept a byte copy instead"
    sources: list[int] = []
    total = _sizes(directory_fd, target.name, target.name + "-wal")
    count = stage_counter(progress, "safety-copy", total)
    try:
        copied = []
        for suffix in ("", "-wal"):
            try:
                # O_NONBLOCK: a FIFO planted under this name must not hang us; it is refused below.
                source = os.open(target.name + suffix, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                                 dir_fd=directory_fd)
            except FileNotFoundError:
                continue
            sources.append(source)  # closed only after the read transaction: see holders.py's caution
            info = os.fstat(source)
            if not stat.S_ISREG(info.st_mode):
                raise RestoreTargetUnsafe(f"{target.name}{suffix} is not a regular file", hint=NOT_A_FILE_HINT)
            if suffix and info.st_size == 0:
                continue
            with os.fdopen(workspace.create("safety" + suffix), "wb") as output:
                with os.fdopen(os.dup(source), "rb") as reading:
                    while chunk := reading.read(1 << 20):
                        output.write(chunk)
                        if count:
                            count(len(chunk))
                output.flush()
                os.fsync(output.fileno())
            copied.append(suffix)
        finish(progress, "safety-copy", total)
    finally:
        if reader is not None:
            reader.close()
        for source in sources:
            os.close(source)
    for seq in range(1, MAX_SAFETY_COPIES + 1):
        final = safety_copy_path(target, now, tz, seq)
        try:
            for suffix in copied:
                workspace.link_out("safety" + suffix, directory_fd, final.name + suffix)
            return final, note
        except FileExistsError:
            for suffix in copied:  # a name taken by an earlier restore (or planted): undo, take the next
                _unlink_if_ours(directory_fd, final.name + suffix, workspace, "safety" + suffix)
    raise RailguardError(f"every safety copy name for {target.name} up to -{MAX_SAFETY_COPIES} is taken",
                         hint=f"Move the old {target.name}{SAFETY_MARK}* files out of {target.parent}")


def _sizes(directory_fd: int, *names: str) -> int:
    """What a byte copy of ``names`` reads, as far as a stat can tell beforehand (0 for a missing one)."""
    total = 0
    for name in names:
        with contextlib.suppress(OSError):
            info = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


def _unlink_if_ours(directory_fd: int, name: str, workspace: WorkDirectory, ours: str) -> None:
    with contextlib.suppress(OSError):
        mine = os.stat(ours, dir_fd=workspace.fd, follow_symlinks=False)
        there = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
        if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
            os.unlink(name, dir_fd=directory_fd)


def _refuse_linked_companions(target: Path) -> None:
    """SQLite opens (and may create, write or truncate) these beside the database, following links."""
    for suffix in ("-wal", "-shm", "-journal"):
        companion = target.with_name(target.name + suffix)
        try:
            info = os.lstat(companion)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            raise RestoreTargetUnsafe(f"{companion} is not a regular file (a link or a special file): SQLite "
                                      f"would open it with the database", hint=f"Remove it: rm {companion}")


def _checkpoint(target: Path, busy_timeout: float) -> str | None:
    """Fold the old database's -wal into its file; None when nothing is left only in the -wal."""
    if not os.path.lexists(target.with_name(target.name + "-wal")):
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
    removed = remove_stale_work_directories(directory)
    safety_prefix = f"{target.name}{SAFETY_MARK}"
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            match = _STALE.match(entry.name)
            if not match or pid_is_alive(int(match["pid"])):
                continue
            base = match["base"]
            if (".sqlite3" in base and SAFETY_MARK not in base) or base.startswith(safety_prefix):
                _remove_quietly(entry)
                removed.append(entry)
    return removed


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


def _log(directory: Path, source: _Source, target: Path, result: RestoreResult, now: datetime) -> None:
    with contextlib.suppress(OSError):  # a read-only backup directory must not fail a finished restore
        append_line(directory / LOG_NAME, {
            "time": now.astimezone(timezone.utc), "event": "restore", "backup": source.name, "target": target,
            "safety_copy": result.safety_copy.name if result.safety_copy else None,
            "journal_mode": result.journal_mode, "forced": bool(result.forced_past), "result": "ok",
            "total_s": round(result.seconds, 3),
        })
