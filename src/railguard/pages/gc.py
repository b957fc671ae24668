"""Garbage collection of the page store: packs and page lists no generation names are removed.

Only a generation manifest makes an object (a pack, a page list: :func:`objects_of`) needed, so
removal goes manifests first, objects after, each step made durable (unlink, fsync the
directory) before the next:

* :func:`remove_generations` unlinks the manifests of the generations retention dropped, then
  collects the objects; ``kill -9`` between the two leaves objects that nothing names;
* :func:`collect_garbage` removes every pack and page list that no manifest left in the store
  names: the leftovers of a removal cut short, and what a killed or failed backup wrote before
  it could publish its manifest. The writer runs it first, under the lock, so the next run
  cleans up. Format-1 manifests name packs only (their page list is inline); both count.

A manifest that cannot be read might name any object: while one is there, nothing is removed
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
from railguard.pages.store import (
    LISTS_DIR, PACKS_DIR, GenerationManifest, generation_names, list_names, list_path, objects_of, pack_names,
    pack_path,
)


@dataclass
class Collection:
    removed_generations: list[str] = field(default_factory=list)
    removed_packs: list[str] = field(default_factory=list)
    removed_lists: list[str] = field(default_factory=list)
    #: Why nothing was removed (an unreadable manifest), or "".
    held_back: str = ""


def referenced_objects(store: Path) -> tuple[set[str], list[str]]:
    """The objects (paths relative to ``store``) its manifests name, and the manifests that could not be read."""
    needed: set[str] = set()
    unreadable = []
    for name in generation_names(store):
        try:
            needed.update(objects_of(GenerationManifest.parse((store / name).read_bytes())))
        except FileNotFoundError:
            continue
        except (OSError, BadManifest):
            unreadable.append(name)
    return needed, unreadable


def collect_garbage(store: Path) -> Collection:
    """Remove the packs and page lists no manifest in ``store`` names (none while a manifest is unreadable)."""
    collection = Collection()
    needed, unreadable = referenced_objects(store)
    if unreadable:
        collection.held_back = (f"{len(unreadable)} generation manifest(s) cannot be read ({sorted(unreadable)[0]}): "
                                f"no pack was removed")
        return collection
    for directory, names, path_of, removed in ((PACKS_DIR, pack_names, pack_path, collection.removed_packs),
                                               (LISTS_DIR, list_names, list_path, collection.removed_lists)):
        for digest in names(store):
            path = path_of(store, digest)
            if f"{directory}/{path.name}" not in needed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(digest)
        if removed:
            fsync_directory(store / directory)
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
