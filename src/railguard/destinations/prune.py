"""Retention at a destination: apply its policy to the copies it holds, remove what the plan removes.

Used by ``railguard prune`` (every destination after the local directory, or a dry run of
it) and by replication with ``--prune`` / ``[backup] prune = true`` after the copies are made.
In this order, per destination:

1. Choose the policy: the destination's own ``[...destinations.DEST.retention]``, else the
   run's (``railguard prune --keep-daily 3``), else the app's; an empty one is refused.
2. List the copies there and present them as catalog records, so the pure plan of
   :func:`railguard.retention.apply_policy` is the one that prunes the local directory, with
   the same rules: the newest good copy is never removed, copies that are not good (damaged,
   unreadable) are left for a person to inspect, leftovers older than the newest good copy go.
   The local protections (``railguard backups keep``) protect the copies of the same names
   there: a name is never reused, so it is the same backup.
3. Remove, oldest first, manifest before data (:meth:`Destination.delete_backups`), each
   removal a line in ``destinations.log``.
4. Page generations there (docs/pages.md) get the same plan of their own, as the local store
   does: their documents are removed first, then the objects no document left there names
   (:meth:`GenerationCopies.collect_garbage`), under the replication lock so that no upload
   in flight loses an object its document will name. ``kill -9`` between the two leaves
   objects nothing names, never a document naming a missing object; every run that prunes
   collects them.

A destination that fails is reported and the others are still pruned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.backup.catalog import BackupRecord
from railguard.backup.naming import parse_name, stem_for
from railguard.backup.protection import read_protections
from railguard.config import AppSettings, Settings
from railguard.destinations import history
from railguard.destinations.base import Destination, RemoteBackup
from railguard.destinations.configured import replication_lock, selected
from railguard.destinations.generations import GenerationCopies, RemoteGeneration, object_folders
from railguard.errors import Busy, RailguardError
from railguard.pages.faults import fault_point
from railguard.pages.store import parse_generation_name
from railguard.retention import Policy, apply_policy
from railguard.retention.prune import refuse_empty


@dataclass
class DestinationPrune:
    name: str
    policy: str
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    would_remove: list[str] = field(default_factory=list)
    #: Kept there because the backup of that name is protected here.
    protected: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: Why this destination could not be pruned (unreachable, ...); nothing was removed there.
    error: str | None = None
    #: Objects of page generations that no document there names any more, removed.
    collected: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "policy": self.policy, "kept": len(self.kept), "removed": self.removed,
                "would_remove": self.would_remove, "protected": self.protected, "dry_run": self.dry_run,
                "error": self.error, "collected": len(self.collected)}


def prune_destinations(settings: Settings, app: AppSettings, *, now: datetime, only: str | None = None,
                       dry_run: bool = False, fallback: Policy | None = None,
                       env: Mapping[str, str] | None = None) -> list[DestinationPrune]:
    """Prune every destination (or ``only``); one that fails is reported, the others still run.

    ``fallback`` is the policy for destinations without their own (default: the app's), so
    ``railguard prune --keep-daily 3`` means the same thing at a destination as locally.
    """
    stem = stem_for(app.database)
    results = []
    # Replication holds this lock around its own prune; here it keeps a replicate's upload in
    # flight (objects sent, document not yet) from a garbage collection.
    names = selected(app, only)
    with contextlib.ExitStack() as stack:
        if not dry_run:
            try:
                stack.enter_context(replication_lock(app.backup.directory, stem))
            except Busy as exc:  # a replicate is running: it prunes too when asked; try again later
                return [DestinationPrune(name, "", dry_run=dry_run, error=exc.message) for name in names]
        for name in names:
            try:
                destination = Destination(name, app.destinations[name], env)
                results.append(prune_destination(destination, settings, app, stem, now, dry_run=dry_run,
                                                 fallback=fallback))
            except RailguardError as exc:
                results.append(DestinationPrune(name, "", dry_run=dry_run, error=exc.message))
    return results


def prune_destination(destination: Destination, settings: Settings, app: AppSettings, stem: str, now: datetime, *,
                      dry_run: bool, fallback: Policy | None = None) -> DestinationPrune:
    """Apply the destination's own policy, else ``fallback``, else the app's, to its copies."""
    own = destination.settings.retention
    policy = Policy.from_settings(own) if own is not None else fallback or Policy.from_settings(app.retention)
    refuse_empty(policy)
    remote = {backup.name: backup for backup in destination.list_backups(stem)}
    records = [_as_record(backup, destination) for backup in remote.values()]
    plan = apply_policy(records, policy, now=now, tz=settings.timezone,
                        protected=read_protections(app.backup.directory))
    newest = plan.newest_good
    doomed = [decision for decision in reversed(plan.remove) if newest is None or decision.name != newest.name]
    result = DestinationPrune(destination.name, str(policy), [d.name for d in plan.keep], dry_run=dry_run,
                              protected=[d.name for d in plan.protected])
    if dry_run:
        result.would_remove = [decision.name for decision in doomed]
        return result
    for decision in doomed:  # oldest first, manifest before data (Destination.delete_backups)
        result.removed += destination.delete_backups([remote[decision.name]])
        history.record(app.backup.directory, now, destination.name, decision.name, "removed",
                       "; ".join(decision.reasons), event="prune", policy=str(policy))
    _prune_generations(destination, settings, app, stem, now, policy, result)
    return result


def _prune_generations(destination: Destination, settings: Settings, app: AppSettings, stem: str, now: datetime,
                       policy: Policy, result: DestinationPrune) -> None:
    """Step 4: the generations there, documents first, then the objects nothing names."""
    copies = GenerationCopies(destination, stem)
    held = copies.held()
    if not held:
        return
    remote = {generation.name: generation for generation in held}
    plan = apply_policy([_GenerationAsRecord(generation, destination) for generation in held], policy, now=now,
                        tz=settings.timezone, protected=read_protections(app.backup.directory))
    newest = plan.newest_good
    doomed = [decision for decision in reversed(plan.remove) if newest is None or decision.name != newest.name]
    result.kept += [decision.name for decision in plan.keep]
    result.protected += [decision.name for decision in plan.protected]
    if result.dry_run:
        result.would_remove += [decision.name for decision in doomed]
        return
    for decision in doomed:  # oldest first
        result.removed += copies.remove_documents([remote[decision.name]])
        history.record(app.backup.directory, now, destination.name, decision.name, "removed",
                       "; ".join(decision.reasons), event="prune", policy=str(policy), kind="pages")
    fault_point("dest-gc-between")
    # Under the replication lock nothing else writes documents there: what is left is what was
    # listed, less what was just removed (no second download of every document).
    gone = {decision.name for decision in doomed}
    result.collected = copies.collect_garbage([generation for generation in held if generation.name not in gone],
                                              object_folders(held))


class _GenerationAsRecord(BackupRecord):
    """A generation there as the retention plan sees a backup: its name, time and status (a
    generation that is not good, such as one missing an object, is left for a person)."""

    def __init__(self, generation: RemoteGeneration, destination: Destination) -> None:
        parsed = parse_generation_name(generation.manifest_key)
        assert parsed is not None
        key = Path(generation.manifest_key)
        super().__init__(parsed, Path(destination.url), key, key, None, "ok" if generation.is_good else
                         generation.status)
        self._created_at = generation.created_at

    @property
    def created_at(self) -> datetime:
        return self._created_at


def _as_record(backup: RemoteBackup, destination: Destination) -> BackupRecord:
    """The catalog's record shape, so the retention policy reads a destination like a directory."""
    parsed = parse_name((backup.data_key or backup.manifest_key or "").removesuffix(".age"))
    assert parsed is not None
    return BackupRecord(parsed[0], Path(destination.url), Path(backup.data_key) if backup.data_key else None,
                        Path(backup.manifest_key) if backup.manifest_key else None, backup.manifest, backup.status)
