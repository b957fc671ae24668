"""The destinations of one app as ``railguard.toml`` configures them (``[apps.NAME.destinations]``):
open one by name, pick those a run works on, and where this host keeps a copy's bytes in transit.

Shared by every job on destinations (:mod:`~railguard.destinations.replicate`,
:mod:`~railguard.destinations.prune`, :mod:`~railguard.destinations.remote`) so that an
unknown name fails the same way, with the list of known ones, whichever command names it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from railguard.config import AppSettings
from railguard.destinations.base import Destination
from railguard.errors import NotFound


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
