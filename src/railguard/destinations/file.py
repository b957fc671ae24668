"""``file:///path``: a second disk or a mounted NAS share.

Every write goes temp file → fsync → link to the final name → fsync the directory
(:mod:`railguard.durable`), so a crash leaves either nothing or a complete file under the
final name. The directory must already exist: if ``/mnt/nas/tasks`` is missing, the share is
most likely not mounted, and creating it would silently fill the local disk under the mount
point — the very disk the copy is meant to survive.

Reads open the object without following a symbolic link and without waiting on a FIFO, then
require a regular file: the directory may be shared, and what was listed can be swapped for
anything before it is read. An OSError in the middle of a read (a dying disk, a share that
drops) is the destination's error, like every other failure here, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, TypeVar, cast
from urllib.parse import unquote, urlsplit

from railguard.backup.compression import CHUNK
from railguard.config import DestinationSettings
from railguard.destinations.base import (
    DestinationError, ListedStore, ObjectInfo, RemoteBackupNotFound, is_transient_os_error, register, retrying,
    temp_key_for,
)
from railguard.durable import fsync_directory, open_private, promote
from railguard.errors import ConfigError

_T = TypeVar("_T")


@register("file://")
def open_file_store(name: str, settings: DestinationSettings, env: Mapping[str, str],
                    redact: Callable[[str], str]) -> FileStore:
    parts = urlsplit(settings.url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ConfigError(f"destination {name}: {redact(settings.url)} is not an absolute file URL",
                          hint="Write it with three slashes: file:///mnt/nas/tasks")
    return FileStore(name, Path(unquote(parts.path)), settings.attempts)


class FileStore(ListedStore):
    def __init__(self, name: str, directory: Path, attempts: int, *, root: Path | None = None) -> None:
        self.name = name
        self.directory = directory
        self.attempts = attempts
        #: For a store inside the configured directory (:meth:`child`): that directory, which
        #: must exist (the mount check); the folders below it are made on the first upload.
        self.root = root

    def child(self, path: str) -> FileStore:
        """The store of the folder ``path`` (``tasks.pages/packs``) inside this one."""
        return FileStore(self.name, self.directory / path, self.attempts, root=self.root or self.directory)

    def _retry(self, action: Callable[[], _T]) -> _T:
        try:
            return retrying(action, attempts=self.attempts, transient=is_transient_os_error)
        except (RemoteBackupNotFound, DestinationError):
            raise
        except OSError as exc:
            raise DestinationError(f"destination {self.name}: {exc.strerror or exc} ({self.directory})",
                                   hint=_hint(exc, self.directory)) from None

    def _existing_directory(self) -> Path:
        root = self.root or self.directory
        if not root.is_dir():
            raise DestinationError(f"destination {self.name}: directory {root} does not exist "
                                   "(is the disk mounted?)",
                                   hint=f"Mount it, or create it once: mkdir -p {root}")
        return self.directory

    def _made_directory(self) -> Path:
        """The directory, made (0700) below the configured one when missing. Each folder is
        then opened without following a symbolic link: the share may be writable by others,
        and a link planted there would send the copies anywhere."""
        directory = self._existing_directory()
        if self.root is None:
            return directory
        place = self.root
        for part in directory.relative_to(self.root).parts:
            place = place / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(place, 0o700)
            try:
                os.close(os.open(place, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC))
            except OSError as exc:
                raise DestinationError(f"destination {self.name}: {place} is not a directory "
                                       f"({exc.strerror or exc})",
                                       hint=f"Something replaced a folder of the copies; inspect {self.root}") from None
        return directory

    def upload(self, key: str, source: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
        directory = self._retry(self._made_directory)
        start = source.seek(0, os.SEEK_CUR) if source.seekable() else None
        sent = 0  # a retried attempt reports only what goes past the last one: done never goes back

        def attempt() -> None:
            nonlocal sent
            if start is not None:
                source.seek(start)
            temp = directory / temp_key_for(key)
            written = 0
            try:
                with open_private(temp) as output:
                    while chunk := source.read(CHUNK):
                        output.write(chunk)
                        written += len(chunk)
                        if progress and written > sent:
                            progress(written - sent)
                            sent = written
                    output.flush()
                    os.fsync(output.fileno())
                promote(temp, directory / key)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
                raise

        self._retry(attempt)

    @contextlib.contextmanager
    def download(self, key: str) -> Iterator[BinaryIO]:
        path = self._existing_directory() / key
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RemoteBackupNotFound(f"destination {self.name}: {key} does not exist") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW's answer for a symbolic link
                raise self._not_a_file(path, "a symbolic link") from None
            raise self._unreadable(path, exc) from None
        try:
            mode = os.fstat(descriptor).st_mode
            if not stat.S_ISREG(mode):
                raise self._not_a_file(path, _KINDS.get(stat.S_IFMT(mode), "not a file"))
            os.set_blocking(descriptor, True)
            handle = os.fdopen(descriptor, "rb")
        except BaseException:
            os.close(descriptor)
            raise
        with handle:
            # The store's callers only read() it (the contract of ObjectStore.download).
            yield cast(BinaryIO, _Reading(handle, lambda exc: self._unreadable(path, exc)))

    def _unreadable(self, path: Path, exc: OSError) -> DestinationError:
        return DestinationError(f"destination {self.name}: cannot read {path}: {exc.strerror or exc}",
                                hint=_hint(exc, self.directory))

    def _not_a_file(self, path: Path, kind: str) -> DestinationError:
        return DestinationError(f"destination {self.name}: {path} is not a regular file ({kind})",
                                hint=f"Something replaced the stored copy; inspect {self.directory}")

    def listing(self) -> list[ObjectInfo]:
        directory = self._existing_directory()

        def scan() -> list[ObjectInfo]:
            found: list[ObjectInfo] = []
            if self.root is not None and not directory.is_dir():
                return found  # a folder of the copies not made yet: nothing there
            for entry in os.scandir(directory):
                if entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    found.append(ObjectInfo(entry.name, stat.st_size,
                                            datetime.fromtimestamp(stat.st_mtime, timezone.utc)))
            return found

        return self._retry(scan)


    def remove(self, key: str) -> None:
        directory = self._existing_directory()

        def attempt() -> None:
            try:
                (directory / key).unlink()
            except FileNotFoundError:
                return
            fsync_directory(directory)

        self._retry(attempt)


_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


class _Reading:
    """Reads through, raising an OSError of a read as the store's "cannot read" error: a read
    fails mid-way where the open succeeded (EIO from a dying disk, a dropped share)."""

    def __init__(self, source: BinaryIO, unreadable: Callable[[OSError], DestinationError]) -> None:
        self.source = source
        self.unreadable = unreadable

    def read(self, n: int = -1) -> bytes:
        try:
            return self.source.read(n)
        except OSError as exc:
            raise self.unreadable(exc) from None

    def readable(self) -> bool:
        return True


def _hint(exc: OSError, directory: Path) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Give railguard's user write access to {directory} (and check it is not mounted read-only)"
    if exc.errno == errno.ENOSPC:
        return f"Free space on the disk of {directory}, or prune it: railguard prune"
    return f"Check the disk or share mounted at {directory}"
