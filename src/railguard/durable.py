"""Durable file operations: temp file in the same directory, fsync, rename, fsync the directory.

A file that carries its final name is always complete; a crash at any point leaves either the
old state or the new one, plus at most a temporary file that the next run removes.

Private files, because railguard often runs as root in directories another user can write (the
database's directory belongs to the app's user, who needs it for ``-wal`` and ``-shm``):

* every file railguard creates is created with ``O_CREAT|O_EXCL|O_NOFOLLOW``: a name planted in
  advance (a symlink to ``/etc/shadow``) makes the creation fail instead of being followed, and
  ``fchmod`` on the descriptor gives it 0600 whatever the umask;
* work that SQLite must do by path happens inside a :class:`WorkDirectory`, a 0700 directory made
  with ``mkdir`` (which never follows a link) and then reached through its descriptor. Nobody
  else can create anything inside it. Its owner could still rename it within the parent, so
  SQLite is handed ``/proc/self/fd/N/name``: SQLite resolves that link to wherever the
  directory really is at the moment it opens the file, and every rename out of it goes through
  the descriptor (``renameat``/``linkat``), never through the directory's name.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal, TextIO
from pathlib import Path

TEMP_MARK = ".tmp-"
#: Name prefix of a :class:`WorkDirectory`; the creating process's pid follows.
WORK_MARK = ".railguard-work.tmp-"
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = Path("/proc/self/fd")


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(final: Path) -> Path:
    """A hidden temporary name beside ``final``; :func:`is_temp_name` recognises it."""
    return final.with_name(f".{final.name}{TEMP_MARK}{os.getpid()}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_MARK in name


def promote(temp: Path, final: Path, *, overwrite: bool = False) -> None:
    """Give a complete, fsynced ``temp`` its final name and make the rename durable.

    Without ``overwrite`` this never replaces an existing file: ``link`` fails if ``final``
    exists, where ``rename`` would silently replace it.
    """
    if overwrite:
        os.replace(temp, final)
    else:
        os.link(temp, final)
        os.unlink(temp)
    fsync_directory(final.parent)


def write_bytes_atomic(final: Path, data: bytes, *, mode: int = 0o600) -> None:
    temp = temp_path_for(final)
    try:
        try:
            fd = create_private_file(temp, mode)
        except FileExistsError:
            # Left by a killed run that had our pid, or planted: unlink removes the name only
            # (never what a link points to), and the exclusive create below cannot follow one.
            temp.unlink()
            fd = create_private_file(temp, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        promote(temp, final, overwrite=True)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


@contextlib.contextmanager
def removing_on_failure(path: Path) -> Iterator[Path]:
    """Yield ``path``; delete it if the block raises (including KeyboardInterrupt)."""
    try:
        yield path
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise


def remove_durably(path: Path) -> None:
    path.unlink()
    fsync_directory(path.parent)


def create_private_file(path: Path | str, mode: int = 0o600, *, dir_fd: int | None = None) -> int:
    """Create the new file ``path`` (never an existing one, never through a link); returns its fd.

    The mode is set through the descriptor, so the umask cannot loosen (or tighten) it.
    """
    fd = os.open(path, _CREATE_FLAGS, mode, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: Path, mode: Literal["wb", "ab"] = "wb") -> BinaryIO:
    """:func:`create_private_file` as a file object (``"wb"`` or ``"ab"``, 0600)."""
    return os.fdopen(create_private_file(path), mode)


def open_private_append(path: Path) -> TextIO:
    """``path`` opened for appending text, created 0600 if missing; never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")


def make_private_directory(path: Path) -> None:
    """``mkdir -p`` whose last directory is 0700 whatever the umask (tightened if it exists and is ours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def create_private_database(path: Path) -> None:
    """Make sure the SQLite database ``path`` exists as a 0600 file before SQLite opens it.

    SQLite creates a missing database with 0644 & ~umask and gives its ``-wal``, ``-shm`` and
    ``-journal`` the main file's permissions (os_unix.c, ``findCreateFileMode``): creating the
    main file 0600 first makes all of them private. An existing file is left as it is.
    """
    with contextlib.suppress(FileExistsError):
        os.close(create_private_file(path))


def libc_function(name: str) -> Callable[..., int] | None:
    """The C library's function ``name`` (errno kept for ``ctypes.get_errno``), or None off Linux or
    where the library lacks it. Look it up once, at import: a child between fork and exec must
    not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                                                            use_errno=True), name)
    except (OSError, AttributeError):
        return None
    return function


def pid_is_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkDirectory:
    """A directory only this user can enter, made inside ``parent`` (same filesystem) and held open.

    Create files in it with :meth:`create`, hand SQLite :meth:`route`, and move a finished file
    out with :meth:`move_out` or :meth:`link_out`; :meth:`close` removes whatever is left.
    A killed run leaves the directory behind: :func:`remove_stale_work_directories` removes it.
    """

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.name = f"{WORK_MARK}{os.getpid()}-{secrets.token_hex(6)}"
            os.mkdir(self.name, 0o700, dir_fd=self.parent_fd)  # fails on any existing name, links included
            self.fd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=self.parent_fd)
            info = os.fstat(self.fd)
            if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
                # Someone swapped a directory of their own in between mkdir and open.
                os.close(self.fd)
                raise PermissionError(f"{parent / self.name} was replaced while it was being created")
        except BaseException:
            os.close(self.parent_fd)
            raise

    def __enter__(self) -> WorkDirectory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        """Where the directory was made (for messages; it may have been renamed since)."""
        return self.parent / self.name

    def route(self, name: str) -> Path:
        """A path to ``name`` inside this directory that holds even if the directory is renamed."""
        if _PROC_FD.is_dir():
            return _PROC_FD / str(self.fd) / name
        return self.path / name  # no /proc: the directory's name is the best we have

    def create(self, name: str, mode: int = 0o600) -> int:
        return create_private_file(name, mode, dir_fd=self.fd)

    def move_out(self, name: str, directory_fd: int, final: str) -> None:
        """Rename ``name`` over ``final`` in the directory ``directory_fd`` (replacing it), durably."""
        os.rename(name, final, src_dir_fd=self.fd, dst_dir_fd=directory_fd)
        os.fsync(directory_fd)

    def link_out(self, name: str, directory_fd: int, final: str) -> None:
        """Give ``name`` the new name ``final`` in ``directory_fd``; FileExistsError if it is taken."""
        os.link(name, final, src_dir_fd=self.fd, dst_dir_fd=directory_fd, follow_symlinks=False)
        os.fsync(directory_fd)

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            for entry in os.listdir(self.fd):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry, dir_fd=self.fd)
            ours = os.fstat(self.fd)
            with contextlib.suppress(OSError):
                there = os.stat(self.name, dir_fd=self.parent_fd, follow_symlinks=False)
                if (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino):  # never someone else's
                    os.rmdir(self.name, dir_fd=self.parent_fd)
        finally:
            os.close(self.fd)
            os.close(self.parent_fd)
            self.fd = -1


def remove_stale_work_directories(directory: Path) -> list[Path]:
    """Remove the :class:`WorkDirectory` left in ``directory`` by killed runs of this user.

    Only directories (never links) owned by this user whose process is gone; anything else with
    the prefix is left alone. Safe without a lock: a live run's pid is alive.
    """
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if not entry.name.startswith(WORK_MARK):
                continue
            pid = entry.name[len(WORK_MARK):].split("-", 1)[0]
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and pid.isdigit()
                        and not pid_is_alive(int(pid))):
                    shutil.rmtree(entry.path)  # fd-based: never follows a link inside (rmtree.avoids_symlink_attacks)
                    removed.append(Path(entry.path))
    return removed
