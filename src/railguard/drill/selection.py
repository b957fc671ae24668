"""Which backup a drill restores: a name, the newest good one, or any good one at random.

A monthly drill of ``latest`` only ever proves the newest backup; ``random`` also catches an
older one that rotted or was taken by a build whose migrations the current app cannot apply.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from railguard.errors import NotFound


class BackupNotFound(NotFound):
    pass


class _Backup(Protocol):
    @property
    def is_good(self) -> bool: ...

    @property
    def name(self) -> str: ...


B = TypeVar("B", bound=_Backup)


def choose_random(backups: Sequence[B], rng: random.Random, where: str) -> B:
    """One good backup, uniformly at random (``backups`` as the catalog lists them)."""
    good = [backup for backup in backups if backup.is_good]
    if not good:
        raise BackupNotFound(f"no verified backup in {where} to drill", hint="Take one with: railguard backup")
    return rng.choice(good)
