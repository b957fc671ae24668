"""Garbage collection of the page store: packs no generation names are removed.

Only a generation manifest makes a pack needed, so removal goes manifests first, packs after,
each step made durable (unlink, fsync the directory) before the next:

* :func:`remove_generations` unlinks the manifests of the generations retention dropped, then
  collects the packs; ``kill -9`` between the two leaves packs that nothing names;
* :func:`collect_garbage` removes every pack that no manifest left in the store names: the
  leftovers of a removal cut short, and the packs a killed or failed backup wrote before it
  could publish its manifest. The writer runs it first, under the lock, so the next run cleans up.

A manifest that cannot be read might name any pack: while one is there, no pack is removed
(:attr:`Collection.held_back` says why); losing data on a guess is worse than keeping a pack.
Callers hold the database's backup lock (``.<stem>.lock`` in the backup directory).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from railguard.backup.manifest import BadManifest
from railguard.durable import fsync_directory
from railguard.pages.faults import fault_point
from railguard.pages.store import PACKS_DIR, GenerationManifest, generation_names, pack_names, pack_path


@dataclass
class Collection:
    removed_generations: list[str] = field(default_factory=list)
    removed_packs: list[str] = field(default_factory=list)
    #: Why no pack was removed (an unreadable manifest), or "".
    held_back: str = ""


def referenced_packs(store: Path) -> tuple[set[str], list[str]]:
    """The packs the manifests in ``store`` name, and the manifests that could not be read."""
    needed: set[str] = set()
    unreadable = []
    for name in generation_names(store):
        try:
            needed.update(GenerationManifest.parse((store / name).read_bytes()).packs)
        except FileNotFoundError:
            continue
        except (OSError, BadManifest):
            unreadable.append(name)
    return needed, unreadable


def collect_garbage(store: Path) -> Collection:
    """Remove the packs no manifest in ``store`` names (none while a manifest is unreadable)."""
    collection = Collection()
    needed, unreadable = referenced_packs(store)
    if unreadable:
        collection.held_back = (f"{len(unreadable)} generation manifest(s) cannot be read ({sorted(unreadable)[0]}): "
                                f"no pack was removed")
        return collection
    for pack in pack_names(store):
        if pack not in needed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pack_path(store, pack))
                collection.removed_packs.append(pack)
    if collection.removed_packs:
        fsync_directory(store / PACKS_DIR)
    return collection


def remove_generations(store: Path, names: list[str]) -> Collection:
    """Remove the generations ``names`` (manifest file names), then the packs they alone needed."""
    removed = []
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store / name)
            removed.append(name)
    if removed:
        fsync_directory(store)
    fault_point("gc-between")
    collection = collect_garbage(store)
    collection.removed_generations = removed
    return collection
