"""Replication: copy to each destination what it is missing, verified there.
(Retention at a destination is :mod:`railguard.destinations.prune`; reading copies back, for
``backups verify --dest`` and ``restore``/``drill --dest``, is :mod:`railguard.destinations.remote`.)

Used by the backup job (after every successful local backup) and by ``railguard replicate``
(catch-up after an outage). A destination that fails never touches the local backups: its
failure becomes a warning with the destination's name and the reason (secrets redacted), a
line in ``destinations.log`` beside the backups, and a ``destination_failed`` notification.

In this order, under one lock per app (``.STEM.replicate.lock`` beside the backups), per
destination: list what it holds; choose what it is missing (below); remove the stale
temporaries of uploads killed long ago; put each missing backup
(:meth:`Destination.put_backup`: data, read back, manifest), stopping at the first error that
says the destination itself is unusable; then, when asked (``prune``) and only if every copy
succeeded, its retention (:func:`railguard.destinations.prune.prune_destination`). The
notifications go last, once the lock is released.

Page generations (docs/pages.md), when the app has a page store here, come after the whole-file
copies (unless the destination proved unusable), chosen by the same rule below and put by
:meth:`railguard.destinations.generations.GenerationCopies.put`: only the objects the
destination lacks travel, then each generation's document. A generation pruned here while it
was being copied is skipped, not failed.

Which backups a destination is missing: every good local backup it lacks that is not older than
the newest good copy it holds (all of them for a new destination). Older gaps, such as a copy
that failed verification while a later one succeeded, are filled only on request
(``fill_gaps``, ``railguard replicate --all``): otherwise a destination with a shorter
retention than the local one would receive, and prune again, the same old backups every run.

A copy is "there" only when it is good **and holds the same bytes** as the local backup (the
manifests' sha256 of the stored file): a name says nothing about content, since a name can be
reused (a backup directory started afresh, or one pruned and reused before names became
unique). A copy under the name that is not that (marked damaged by a verification, failing its
own checks, or another backup's) is replaced whatever its age, as it is no gap that retention
made: :meth:`Destination.put_backup` keeps it until the new copy has been stored and read back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.backup.catalog import BackupRecord, Owner, list_backups
from railguard.backup.naming import stem_for
from railguard.config import AppSettings, Settings
from railguard.destinations import history
from railguard.destinations.base import (
    CopyVerifyFailed, Destination, RemoteBackup, redact_text, redact_url, secrets_in,
)
from railguard.destinations.configured import replication_lock, scratch_beside, selected
from railguard.destinations.generations import GenerationCopies, RemoteGeneration
from railguard.destinations.prune import prune_destination
from railguard.errors import ExitCode, RailguardError, VerifyFailed
from railguard.pages.catalog import GenerationRecord, list_generations
from railguard.pages.store import objects_of, store_for
from railguard.progress import Progress

log = logging.getLogger("railguard.destinations")


@dataclass
class DestinationRun:
    """What happened at one destination during one run."""

    name: str
    url: str  # secrets redacted
    copied: list[str] = field(default_factory=list)
    #: Those of ``copied`` that replaced a damaged copy, or another backup's, under their name.
    replaced: list[str] = field(default_factory=list)
    present: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    #: Why the destination as a whole could not be used (unreachable, no credentials, ...).
    error: str | None = None
    pruned: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    verify_failed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def problems(self) -> list[str]:
        """One line per failure, naming the destination: the job's warnings."""
        reasons = [self.error] if self.error is not None else [item["reason"] for item in self.failed]
        return [reason if reason.startswith(f"destination {self.name}") else f"destination {self.name}: {reason}"
                for reason in reasons]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "ok": self.ok, "copied": self.copied, "replaced": self.replaced,
                "present": self.present,
                "failed": self.failed, "error": self.error, "pruned": self.pruned, "bytes": self.bytes,
                "seconds": round(self.seconds, 3)}


def exit_code_for(runs: list[DestinationRun]) -> ExitCode:
    """``railguard replicate``: 0 all complete, 4 a copy failed verification, 2 a destination failed."""
    if any(run.verify_failed for run in runs):
        return ExitCode.VERIFY_FAILED
    return ExitCode.OK if all(run.ok for run in runs) else ExitCode.ERROR


def replicate(settings: Settings, app_name: str, app: AppSettings, *, now: datetime, only: str | None = None,
              fill_gaps: bool = False, prune: bool = False, env: Mapping[str, str] | None = None,
              notify: bool = True, progress: Progress | None = None) -> list[DestinationRun]:
    """Copy missing backups to each destination (or just ``only``) and verify them there.

    ``progress`` gets each copy's stages (:meth:`Destination.put_backup`), one copy after another.

    Raises :class:`~railguard.errors.Busy` while another run replicates this app: two runs
    putting the same backup would each remove the other's half-verified copy.
    """
    stem = stem_for(app.database)
    names = selected(app, only)
    with replication_lock(app.backup.directory, stem):
        owner = Owner.of(settings, app_name, app)
        runs = [_replicate_one(settings, owner, app, name, stem, now, fill_gaps, prune, env, progress)
                for name in names]
    if notify:
        _notify_failures(settings, app_name, [run for run in runs if not run.ok], now)
    return runs


def _replicate_one(settings: Settings, owner: Owner, app: AppSettings, name: str, stem: str, now: datetime,
                   fill_gaps: bool, prune: bool, env: Mapping[str, str] | None,
                   progress: Progress | None = None) -> DestinationRun:
    local = [record for record in list_backups(app.backup.directory, owner) if record.is_good]  # by manifest
    run = DestinationRun(name, redact_url(app.destinations[name].url))
    started = time.monotonic()
    try:
        destination = Destination(name, app.destinations[name], env)
        run.url = destination.url
        usable = _copy_missing(destination, local, stem, run, app.backup.directory, now, fill_gaps, progress)
        if usable and store_for(app.backup.directory, stem).is_dir():
            _copy_missing_generations(destination, owner, stem, run, app.backup.directory, now, fill_gaps, progress)
        if prune and run.ok:
            try:
                run.pruned = prune_destination(destination, settings, app, stem, now, dry_run=False).removed
            except RailguardError as exc:
                run.failed.append({"backup": "", "reason": f"prune failed: {exc.message}"})
    except RailguardError as exc:
        run.error = exc.message
        history.record(app.backup.directory, now, name, "", "failed", exc.message)
    except Exception as exc:  # a library surprise must not turn a good local backup into a failed job
        secrets = secrets_in(app.destinations[name].url, os.environ if env is None else env)
        run.error = redact_text(f"unexpected {type(exc).__name__}: {exc}", secrets)
        log.warning("destination %s: %s", name, run.error)
        history.record(app.backup.directory, now, name, "", "failed", run.error)
    run.seconds = time.monotonic() - started
    return run


def _copy_missing(destination: Destination, local: list[BackupRecord], stem: str, run: DestinationRun,
                  directory: Path, now: datetime, fill_gaps: bool, progress: Progress | None = None) -> bool:
    """Copy the whole-file backups the destination is missing; False once it proved unusable."""
    remote = {backup.name: backup for backup in destination.list_backups(stem)}
    newest_remote = max((backup.created_at for backup in remote.values() if backup.is_good), default=None)
    wanted: list[tuple[BackupRecord, RemoteBackup | None, str | None]] = []
    for record in local:
        there = remote.get(record.name)
        why = _replace_reason(there, record)
        if there is not None and there.is_good and why is None:
            run.present += 1
        elif why is not None:
            wanted.append((record, there, why))
        # ">=": two backups can share a created_at (it has a resolution of one second); the
        # one the destination lacks is still new, not a gap.
        elif fill_gaps or newest_remote is None or record.created_at >= newest_remote:
            wanted.append((record, there, None))  # nothing there, or a half copy (and any mark it left)
    with contextlib.suppress(RailguardError):
        destination.remove_stale_temporaries(now)
    for record, replacing, why in wanted:
        assert record.data_path is not None and record.manifest is not None
        started = time.monotonic()
        try:
            copy = destination.put_backup(record.data_path, record.manifest, scratch=scratch_beside(directory),
                                          replacing=replacing, progress=progress)
        except VerifyFailed as exc:
            run.failed.append({"backup": record.name, "reason": exc.message})
            run.verify_failed = run.verify_failed or isinstance(exc, CopyVerifyFailed)
            history.record(directory, now, destination.name, record.name, "failed", exc.message)
            continue
        except RailguardError as exc:
            # Unreachable, credentials, missing bucket: the next backup would fail the same way.
            run.failed.append({"backup": record.name, "reason": exc.message})
            history.record(directory, now, destination.name, record.name, "failed", exc.message)
            return False
        run.copied.append(record.name)
        if why is not None:
            run.replaced.append(record.name)
        run.bytes += copy.size or 0
        history.record(directory, now, destination.name, record.name, "ok", why, size=copy.size,
                       seconds=round(time.monotonic() - started, 3), encrypted=copy.encryption is not None)
    return True


def _copy_missing_generations(destination: Destination, owner: Owner, stem: str, run: DestinationRun,
                              directory: Path, now: datetime, fill_gaps: bool, progress: Progress | None) -> None:
    """Page generations (docs/pages.md): the same choice as for whole-file backups, a copy being
    "there" when it is good and of the same database (``raw_sha256``); only the objects the
    destination lacks travel (:meth:`GenerationCopies.put`)."""
    local = [record for record in list_generations(directory, owner) if record.is_good]
    if not local:
        return
    copies = GenerationCopies(destination, stem)
    with contextlib.suppress(RailguardError):
        copies.remove_stale_temporaries(_folders(local), now)
    there = copies.held()
    remote = {generation.name: generation for generation in there}
    newest_remote = max((generation.created_at for generation in there if generation.is_good), default=None)
    wanted: list[tuple[GenerationRecord, RemoteGeneration | None, str | None]] = []
    for record in local:
        assert record.manifest is not None
        copy = remote.get(record.name)
        if copy is not None and copy.is_good and copy.manifest is not None \
                and copy.manifest.raw_sha256 == record.manifest.raw_sha256:
            run.present += 1
        elif copy is not None:
            reason = (f"replaced a generation that is {copy.status}" if not copy.is_good
                      else "replaced another generation stored under the same name")
            wanted.append((record, copy, reason))
        elif fill_gaps or newest_remote is None or record.created_at >= newest_remote:
            wanted.append((record, None, None))
    if not wanted:
        return
    listed = copies.listing(_folders(local))
    for record, replacing, why in wanted:
        started = time.monotonic()
        try:
            copy, sent = copies.put(record, there, listed, scratch=scratch_beside(directory), replacing=replacing,
                                    progress=progress)
        except VerifyFailed as exc:
            if not record.manifest_path.exists():
                continue  # pruned here meanwhile (its packs with it): nothing left to copy, nothing wrong
            run.failed.append({"backup": record.name, "reason": exc.message})
            run.verify_failed = run.verify_failed or isinstance(exc, CopyVerifyFailed)
            history.record(directory, now, destination.name, record.name, "failed", exc.message)
            continue
        except RailguardError as exc:
            run.failed.append({"backup": record.name, "reason": exc.message})
            history.record(directory, now, destination.name, record.name, "failed", exc.message)
            break
        there.append(copy)
        run.copied.append(record.name)
        if why is not None:
            run.replaced.append(record.name)
        run.bytes += sent
        history.record(directory, now, destination.name, record.name, "ok", why, size=sent,
                       seconds=round(time.monotonic() - started, 3), encrypted=copy.encrypted, kind="pages",
                       objects=len(copy.objects))


def _folders(records: list[GenerationRecord]) -> set[str]:
    """The folders of the store (relative) that the generations' objects live in."""
    return {path.rpartition("/")[0] for record in records if record.manifest is not None
            for path in objects_of(record.manifest)}


def _replace_reason(there: RemoteBackup | None, record: BackupRecord) -> str | None:
    """Why the copy ``there`` under ``record``'s name must be replaced; None if it is that backup,
    good, or if nothing complete enough to keep is there (a half copy is simply copied over)."""
    if there is None or there.manifest_key is None:
        return None
    assert record.manifest is not None
    if there.damaged is not None:
        return f"replaced a copy marked damaged ({there.damaged})"
    if not there.is_good:
        return f"replaced a copy that is {there.status}"
    assert there.manifest is not None
    if there.manifest.sha256 != record.manifest.sha256:
        return (f"replaced another backup stored under the same name (sha256 {there.manifest.sha256[:12]}..., "
                f"created {there.manifest.created_at})")
    return None


def _notify_failures(settings: Settings, app_name: str, failed: list[DestinationRun], now: datetime) -> None:
    if not failed:
        return
    try:
        from railguard.notify.notifier import notifier_for

        notifier = notifier_for(settings)
        for run in failed:
            notifier.notify("destination_failed", f"railguard {app_name}: copy to {run.name} failed",
                            "\n".join(run.problems()), now=now)
    except Exception as exc:  # a notification problem must never hide the copy's own failure
        log.warning("destination_failed notification could not be sent: %s", exc)
