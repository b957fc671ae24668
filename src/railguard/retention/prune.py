"""``prune_backups``: apply a retention plan to a backup directory.

The plan comes from the pure :func:`~railguard.retention.policy.apply_policy`; this module only
consumes it. Each removal deletes the manifest first and the data file second, each followed
by an fsync of the directory. A crash in between leaves a data file without a manifest, which
:func:`railguard.backup.catalog.list_backups` reports as ``incomplete: no manifest`` (never as
a good backup, so ``restore latest`` and ``backups verify`` cannot pick it) and which the next
prune removes as a leftover. The other order would leave a manifest that vouches for nothing.

Only names that :mod:`railguard.backup.naming` recognises are ever considered, and only in the
backup directory itself: a user's own files there, hidden temporaries and ``failed/`` stay.
The one exception: plaintext copies that a killed ``backups verify`` left behind
(:func:`railguard.backup.verify.remove_stale_verify_copies`) go, since nothing else would remove them.

A protected backup (:mod:`railguard.backup.protection`) is never removed; its protection is
read from the directory here and passed to the pure plan. When a backup whose protection has
expired goes, its ``.keep.json`` goes after its two files.

A directory that cannot be locked (read-only, not ours) is reported as :class:`PruneFailed`
when the plan would remove something, and is no error when it would not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from railguard.backup.catalog import BackupRecord, Owner, list_backups
from railguard.backup.protection import Protection, read_protections, sidecar_path
from railguard.backup.verify import remove_stale_verify_copies
from railguard.backup.log import LOG_NAME
from railguard.durable import remove_durably
from railguard.errors import RailguardError, UsageError
from railguard.locking import exclusive_lock
from railguard.logfmt import append_line
from railguard.pages.catalog import GenerationRecord, list_generations
from railguard.pages.gc import remove_generations
from railguard.pages.store import generation_file_name, store_for
from railguard.retention.policy import Decision, Plan, Policy, apply_policy


class EmptyPolicy(UsageError):
    pass


class PruneFailed(RailguardError):
    pass


@dataclass
class PruneResult:
    plan: Plan
    dry_run: bool
    #: Names actually removed (empty on a dry run).
    removed: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The short form that goes into a backup job's report and ``--json``."""
        return {
            "policy": str(self.plan.policy),
            "dry_run": self.dry_run,
            "kept": len(self.plan.keep),
            "removed": self.removed if not self.dry_run else [],
            "would_remove": [d.name for d in self.plan.remove] if self.dry_run else [],
            "left": [{"name": d.name, "status": d.backup.status, "detail": d.backup.detail}
                     for d in self.plan.leave],
            "protected": [{"name": d.name, **d.protection.as_dict()} for d in self.plan.protected
                          if d.protection is not None],
        }


def refuse_empty(policy: Policy) -> None:
    if policy.is_empty():
        raise EmptyPolicy("the retention policy is empty: it would remove every backup",
                          hint="Give at least one --keep-* flag, or set [apps.NAME.retention] in railguard.toml")


def plan_prune(directory: Path, stem: str | Owner, policy: Policy, *, now: datetime, tz: str) -> Plan:
    """What :func:`prune_backups` would do, without locking or touching anything.

    With an :class:`~railguard.backup.catalog.Owner` only that app's backups (by manifest) are
    planned; another app's backups under the same file stem are not even looked at."""
    refuse_empty(policy)
    return apply_policy(list_backups(directory, stem), policy, now=now, tz=tz, protected=read_protections(directory))


def prune_backups(directory: Path, stem: str | Owner, policy: Policy, *, now: datetime, tz: str,
                  dry_run: bool = False) -> PruneResult:
    """Remove the backups of ``stem`` (or of an app, by manifest) in ``directory`` that ``policy``
    does not keep."""
    refuse_empty(policy)
    if dry_run or not directory.is_dir():
        return PruneResult(plan_prune(directory, stem, policy, now=now, tz=tz), dry_run=True)
    file_stem = stem.stem if isinstance(stem, Owner) else stem
    with contextlib.ExitStack() as stack:
        try:
            # The backup engine's lock: a backup being written or a restore reading one cannot race us.
            stack.enter_context(exclusive_lock(directory / f".{file_stem}.lock",
                                               f"backups of {file_stem} in {directory}"))
        except OSError as exc:
            plan = plan_prune(directory, stem, policy, now=now, tz=tz)
            if not plan.remove:
                return PruneResult(plan, dry_run=False)  # nothing to remove: nothing to lock
            raise PruneFailed(f"cannot prune {directory}: {exc.strerror or exc}; nothing was removed",
                              hint=_hint(exc)) from None
        remove_stale_verify_copies(directory)
        plan = plan_prune(directory, stem, policy, now=now, tz=tz)
        _check_plan(plan)
        plan.decisions = [_freeze_time(decision) for decision in plan.decisions]
        result = PruneResult(plan, dry_run=False)
        for decision in reversed(plan.remove):  # oldest first: an interrupted prune removed the oldest
            _remove(decision, directory, str(policy), now)
            result.removed.append(decision.name)
        return result


def prune_generations(directory: Path, owner: Owner, policy: Policy, *, now: datetime, tz: str,
                      dry_run: bool = False) -> PruneResult:
    """The same retention for page generations (docs/pages.md): the same pure plan, then the
    dropped manifests go first and the packs no kept generation needs after them
    (:func:`railguard.pages.gc.remove_generations`, crash-safe in that order)."""
    refuse_empty(policy)
    plan = plan_generations(list_generations(directory, owner), policy, now=now, tz=tz,
                            protected=read_protections(directory))
    if dry_run or not plan.remove:
        return PruneResult(plan, dry_run=dry_run)
    with exclusive_lock(directory / f".{owner.stem}.lock", f"backups of {owner.stem} in {directory}"):
        plan = plan_generations(list_generations(directory, owner), policy, now=now, tz=tz,
                                protected=read_protections(directory))
        _check_plan(plan)
        result = PruneResult(plan, dry_run=False)
        names = [generation_file_name(decision.backup.id) for decision in reversed(plan.remove)]
        try:
            remove_generations(store_for(directory, owner.stem), names)
        except OSError as exc:
            raise PruneFailed(f"cannot prune the generations in {directory}: {exc.strerror or exc}",
                              hint=_hint(exc)) from exc
        for decision in reversed(plan.remove):
            result.removed.append(decision.name)
            _log(directory, {"time": now.astimezone(timezone.utc), "event": "prune", "backup": decision.name,
                             "files": generation_file_name(decision.backup.id), "reason": "; ".join(decision.reasons),
                             "policy": str(policy), "result": "removed"})
        return result


def plan_generations(records: list[GenerationRecord], policy: Policy, *, now: datetime, tz: str,
                     protected: dict[str, Protection] | None = None) -> Plan:
    """The pure retention plan over page generations (what :func:`prune_generations` removes,
    and what the status page says of each generation): each as the plan sees a backup."""
    return apply_policy([_GenerationAsBackup(record) for record in records], policy, now=now, tz=tz,
                        protected=protected)


class _GenerationAsBackup(BackupRecord):
    """A page generation as the retention plan sees a backup: its name, time and status.

    Its manifest stands in for both files, so a generation whose manifest is not good is never a
    leftover (the plan leaves it for a human), and its time is the manifest's, read once.
    """

    def __init__(self, record: GenerationRecord) -> None:
        super().__init__(record.id, record.directory, record.manifest_path, record.manifest_path, None,
                         record.status, record.detail)
        self._created_at = record.created_at

    @property
    def created_at(self) -> datetime:
        return self._created_at


class _RemovedBackup(BackupRecord):
    """A record whose time was read while its files existed.

    The catalog reads the time of a backup without a manifest from its file's mtime, on
    demand; once prune has removed the file, reporting the decision must not read it again.
    """

    def __init__(self, record: BackupRecord) -> None:
        created_at = record.created_at
        super().__init__(**{f.name: getattr(record, f.name) for f in dataclasses.fields(record)})
        self._created_at = created_at

    @property
    def created_at(self) -> datetime:
        return self._created_at


def _freeze_time(decision: Decision) -> Decision:
    return dataclasses.replace(decision, backup=_RemovedBackup(decision.backup)) if decision.action == "remove" \
        else decision


def _hint(exc: OSError) -> str:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "The backup directory is on a read-only filesystem or not writable by this user"
    return "Check the backup directory"


def _check_plan(plan: Plan) -> None:
    # apply_policy never does this for a non-empty policy; a refusal here beats a lost backup if
    # that ever changes.
    newest = plan.newest_good
    if newest is not None and any(d.backup is newest for d in plan.remove):
        raise PruneFailed(f"refusing a plan that removes the newest good backup {newest.name}",
                          hint="This is a bug in railguard; please report it with the output of --dry-run")


def _remove(decision: Decision, directory: Path, policy: str, now: datetime) -> None:
    record = decision.backup
    files = [path for path in (record.manifest_path, record.data_path) if path is not None]
    keep_file = sidecar_path(directory, record.name)  # an expired protection: after the backup itself
    if keep_file.is_file():
        files.append(keep_file)
    fields = {"time": now.astimezone(timezone.utc), "event": "prune", "backup": record.name,
              "files": ",".join(path.name for path in files), "reason": "; ".join(decision.reasons),
              "policy": policy}
    try:
        for path in files:  # manifest first: see the module docstring
            try:
                remove_durably(path)
            except FileNotFoundError:
                pass  # already gone (removed by hand, or by a run that crashed right after)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a failing log must not hide the failing removal
            _log(directory, {**fields, "result": "failed", "error": exc.strerror or str(exc)})
        raise PruneFailed(f"cannot remove {record.name} from {directory}: {exc.strerror or exc}",
                          hint=_hint(exc)) from exc
    _log(directory, {**fields, "result": "removed"})


def _log(directory: Path, fields: dict[str, Any]) -> None:
    append_line(directory / LOG_NAME, fields)
