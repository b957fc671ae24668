"""Planned files and how they reach the disk: all or nothing, never over an existing file
unless forced, each written durably (temp file, fsync, rename)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from railguard.durable import promote, temp_path_for
from railguard.errors import NotFound, RailguardError


@dataclass(frozen=True)
class PlannedFile:
    name: str  #: relative to the target directory
    content: str
    executable: bool = False

    @property
    def mode(self) -> int:
        return 0o755 if self.executable else 0o644


class DeployFilesExist(RailguardError):
    """Some files to write already exist and --force was not given; nothing was written."""


class TargetDirectoryNotFound(NotFound):
    pass


def write_files(directory: str | Path, files: list[PlannedFile], *, force: bool = False) -> list[Path]:
    """Write every planned file into ``directory``; refuse (writing nothing) when one exists
    and ``force`` is false. Returns the written paths."""
    root = Path(directory)
    if not root.is_dir():
        raise TargetDirectoryNotFound(f"directory {root} does not exist",
                                      hint=f"Create it first (mkdir -p {root}) or give another DIR")
    existing = [f.name for f in files if (root / f.name).exists() or (root / f.name).is_symlink()]
    if existing and not force:
        raise DeployFilesExist(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} in {root}; "
                               "nothing was written",
                               hint="Compare with --print, then re-run with --force to overwrite")
    written = []
    for planned in files:
        final = root / planned.name
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_path_for(final)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, planned.mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(planned.content.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, planned.mode)  # the umask may have narrowed it
            try:
                promote(temp, final, overwrite=force)
            except FileExistsError:
                raise DeployFilesExist(f"{planned.name} appeared in {root} while writing; it was kept",
                                       hint="Re-run with --force to overwrite it") from None
        finally:
            if temp.exists():
                temp.unlink()
        written.append(final)
    return written


def render_for_print(files: list[PlannedFile]) -> str:
    """All files in one text, each under a ``==> name <==`` header (as ``tail`` prints several)."""
    return "\n".join(f"==> {f.name} <==\n{f.content}" for f in files)
