"""Durable file operations: temp file in the same directory, fsync, rename, fsync the directory.

A file that carries its final name is always complete; a crash at any point leaves either the
old state or the new one, plus at most a temporary file that the next run removes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".tmp-"


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
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
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
