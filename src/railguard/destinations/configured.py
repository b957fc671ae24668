"""The destinations of one app as ``railguard.toml`` configures them (``[apps.NAME.destinations]``):
open one by name, pick those a run works on, and where this host keeps a copy's bytes in transit.

Shared by every job on destinations (:mod:`~railguard.destinations.replicate`,
:mod:`~railguard.destinations.prune`, :mod:`~railguard.destinations.remote`) so that an
unknown name fails the same way, with the list of known ones, whichever command names it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from railguard.config import AppSettings
from railguard.destinations.base import Destination
from railguard.errors import NotFound
from railguard.locking import exclusive_lock


class DestinationNotFound(NotFound):
    pass


def open_destination(app: AppSettings, name: str, env: Mapping[str, str] | None = None) -> Destination:
    if name not in app.destinations:
        known = ", ".join(sorted(app.destinations)) or "none configured"
        raise DestinationNotFound(f"no destination named {name!r}",
                                  hint=f"Known destinations: {known} (see [apps.NAME.destinations] in railguard.toml)")
    return Destination(name, app.destinations[name], env)


def selected(app: AppSettings, only: str | None) -> list[str]:
    """The names a run works on: ``only`` (which must exist), else every destination, sorted."""
    if only is not None:
        if only not in app.destinations:
            open_destination(app, only)  # raises with the list of known names
        return [only]
    return sorted(app.destinations)


def scratch_beside(directory: Path) -> Path | None:
    """Where a copy is encrypted or fetched on this host: beside the backups in ``directory``
    (same disk, sized for them) when railguard may write there, else the system's temporary
    directory (None)."""
    return directory if os.access(directory, os.W_OK) else None


@contextlib.contextmanager
def replication_lock(directory: Path, stem: str) -> Iterator[None]:
    """One run at a time copies to, or collects garbage at, this app's destinations
    (``.STEM.replicate.lock`` beside the backups): two runs putting the same backup would each
    remove the other's half-verified copy, and a prune's garbage collection would take the
    objects of a generation whose document is not uploaded yet."""
    if not directory.is_dir():  # no backups yet: nothing to copy, nothing to race for
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(directory / f".{stem}.replicate.lock",
                                               f"copies of {stem} to its destinations"))
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            # A read-only backup directory: no backup job can run there to race with us.
        yield
