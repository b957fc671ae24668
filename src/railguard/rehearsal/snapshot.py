"""The pre-deploy snapshot: a verified backup of the live database before a deploy goes out.

A deploy whose migration runs cannot be undone by rolling back the image alone; the snapshot
is what ``railguard rollback --with-data`` restores (:mod:`railguard.rehearsal.data_rollback`)
and what the rehearsal boots the candidate on. So it is taken first, and a snapshot that
fails blocks the deploy: a deploy that cannot be undone is not started.

Order of work, and why:

1. Nothing to take when ``[apps.NAME.snapshot] enabled = false``, or when the database does
   not exist yet (the first deploy creates it): the step is skipped, with the reason.
2. The backup engine's own verified backup (:func:`railguard.backup.take_backup`: the same
   copy, integrity check, compression and read-back as ``railguard backup``), with the deploy
   it precedes in its manifest (``deploy``: the commit going live, the one it replaces, the
   kind and the history row). The manifest is written once with the rest, so the deploy it
   names is vouched for like every other field of it.
3. Its protection from prune (the sidecar of :mod:`railguard.backup.protection`, reason
   "pre-deploy snapshot for <commit12>", until now + ``keep``): written before anything else
   may prune, so the nightly prune never takes the one backup a rollback needs. A snapshot
   that cannot be protected fails the step too: it would not survive the ``keep`` it promises.
4. The copies to the destinations, as the backup job makes them after every backup
   (:func:`railguard.destinations.replicate.replicate`, without the destinations' prune:
   retention is the scheduled job's). A destination that fails is a warning, never a blocked
   deploy: the verified local snapshot can undo the deploy already, and the failure is told
   to the owner by the replication itself (``destination_failed``). The backup job's
   heartbeat is not pinged: that ping says the *scheduled* backup ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.backup import take_backup
from railguard.backup.catalog import BackupRecord, Owner, list_backups
from railguard.backup.manifest import DeployOrigin, Manifest
from railguard.backup.protection import Protection, protect
from railguard.config import AppSettings, Settings
from railguard.deploy.steps import PreDeployContext, StepResult, pre_deploy_step
from railguard.destinations.replicate import replicate
from railguard.errors import RailguardError
from railguard.rehearsal.shape import read_shape

#: The reason written in a snapshot's protection: ``backups list`` and ``prune`` show it.
REASON = "pre-deploy snapshot for {what}"


class SnapshotFailed(RailguardError):
    """The snapshot was taken but could not be protected from prune."""


@dataclass
class PreDeploySnapshot:
    """A snapshot that was taken: what ``context.facts["snapshot"]`` holds for later steps."""

    #: The backup's name (``railguard backups list``, ``railguard restore NAME``).
    name: str
    #: Its data file (compressed as the backups are; the manifest beside it).
    path: Path
    manifest: Manifest
    protection: Protection
    #: Per destination, what the replication did (the backup job's ``destinations`` summary).
    destinations: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def record(self) -> BackupRecord:
        """The catalog's record of it: what ``materialize`` and ``restore_backup`` take (the
        rehearsal boots a private copy of it)."""
        found = next((record for record in list_backups(self.path.parent) if record.name == self.name), None)
        if found is None or not found.is_good:
            raise SnapshotFailed(f"the pre-deploy snapshot {self.name} is no longer in {self.path.parent}",
                                 hint="Something removed it after it was taken; take a new one by deploying again")
        return found

    def as_dict(self) -> dict[str, Any]:
        origin = self.manifest.deploy
        return {"name": self.name, "path": str(self.path), "protection": self.protection.as_dict(),
                "deploy": None if origin is None else {"commit": origin.commit, "replaces": origin.replaces,
                                                       "kind": origin.kind, "deploy_id": origin.deploy_id},
                "destinations": self.destinations, "warnings": self.warnings}


@pre_deploy_step("snapshot")
def snapshot(context: PreDeployContext) -> StepResult:
    """The pre-deploy step (railguard.rehearsal.steps): take the snapshot, or skip with the reason.

    Leaves ``facts["snapshot"]`` (the :class:`PreDeploySnapshot`, for the rehearsal) and
    ``facts["snapshot_shape"]`` (the schema just before the copy, read-only and without row
    counts: the post-deploy ``schema`` step compares the live one with it). Any error of the
    backup raises, which fails the step and so blocks the deploy."""
    reason = skip_reason(context.app_name, context.app)
    if reason is not None:
        return StepResult.skip("snapshot", reason)
    # Read before the copy: the app's migration runs only once the new version starts.
    shape = read_shape(context.app.database, count_rows=False)
    taken = take_pre_deploy_snapshot(context.settings, context.app_name, context.app, commit=context.commit,
                                     replaces=context.replaces, kind=context.kind, deploy_id=context.deploy_id,
                                     now=context.clock())
    context.facts["snapshot"] = taken
    context.facts["snapshot_shape"] = shape
    until = taken.protection.until
    summary = (f"{taken.name} taken and verified, kept from prune until "
               f"{until:%Y-%m-%d %H:%M} UTC" if until else f"{taken.name} taken and verified")
    summary += "".join(f"; warning: {warning}" for warning in taken.warnings)
    return StepResult("snapshot", True, summary, details=taken.as_dict())


def skip_reason(app_name: str, app: AppSettings) -> str | None:
    """Why no snapshot is taken for ``app``; None when one is."""
    if not app.snapshot.enabled:
        return f"[apps.{app_name}.snapshot] enabled = false"
    if not app.database.exists():
        return f"no database at {app.database} yet (a first deploy): nothing to roll back to"
    return None


def take_pre_deploy_snapshot(settings: Settings, app_name: str, app: AppSettings, *, commit: str | None,
                             replaces: str | None, kind: str, now: datetime, deploy_id: int | None = None,
                             env: Mapping[str, str] | None = None) -> PreDeploySnapshot:
    """Take, protect and replicate the snapshot before deploying ``commit`` over ``replaces``.

    Raises the backup's own error when it fails (nothing is left with a final name then), and
    :class:`SnapshotFailed` when it cannot be protected. Call :func:`skip_reason` first.
    """
    origin = DeployOrigin(commit=commit, replaces=replaces, kind=kind, deploy_id=deploy_id)
    result = take_backup(app.database, app.backup, now=now, tz=settings.timezone, app=app_name, deploy=origin)
    name = result.manifest.name
    what = commit[:12] if commit else f"a {kind}"
    try:
        protection = protect(app.backup.directory, name, REASON.format(what=what), until=now + app.snapshot.keep,
                             now=now)
    except OSError as exc:
        raise SnapshotFailed(
            f"snapshot {name} was taken but could not be protected from prune: {exc.strerror or exc}",
            hint=f"Check that {app.backup.directory} is writable, or protect it by hand: "
                 f"railguard backups keep {name} --for {app.snapshot.keep.days}d") from exc
    snapshot = PreDeploySnapshot(name=name, path=result.path, manifest=result.manifest, protection=protection,
                                 warnings=list(result.warnings))
    if app.destinations:
        _copy_off_host(settings, app_name, app, snapshot, now, env)
    return snapshot


def _copy_off_host(settings: Settings, app_name: str, app: AppSettings, snapshot: PreDeploySnapshot,
                   now: datetime, env: Mapping[str, str] | None) -> None:
    try:
        runs = replicate(settings, app_name, app, now=now, prune=False, env=env)
    except RailguardError as exc:  # Busy: a `railguard replicate` of this app is running
        snapshot.warnings.append(f"copies to destinations skipped: {exc.message}; the next backup or "
                                 "`railguard replicate` copies this snapshot")
        return
    snapshot.destinations = [run.summary() for run in runs]
    for run in runs:
        snapshot.warnings.extend(run.problems())


def find_snapshot(directory: Path, owner: Owner, commit: str) -> BackupRecord | None:
    """The newest good pre-deploy snapshot taken before ``commit`` went live, or None.

    The manifest's ``deploy.commit`` decides (a full SHA in both places when railguard wrote
    them; a prefix of at least 7 hex digits on either side matches too)."""
    wanted = commit.lower()
    for record in reversed(list_backups(directory, owner)):
        origin = record.manifest.deploy if record.manifest is not None else None
        if not record.is_good or origin is None or not origin.commit:
            continue
        have = origin.commit.lower()
        if len(min(have, wanted, key=len)) >= 7 and (have.startswith(wanted) or wanted.startswith(have)):
            return record
    return None
