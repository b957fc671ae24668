"""The rehearsal as a pre-deploy step: every deploy, release and gate run rehearses the candidate
before CapRover gets it, and a failed rehearsal blocks the deploy (docs/deploy.md, "Rehearsed
deploys").

The order of work, and why:

1. Skips, each with its reason in the step: the rehearsal is off (``[apps.NAME.rehearsal]
   enabled``, by default on when the drill says how to start the app); a rollback (it must never
   be blocked: going back is what an operator does when the new commit is broken, and
   ``rollback`` says itself what the snapshot means for the data); no tree (an image rollback,
   the legacy branch build: nothing to rehearse that is sure to be what CapRover builds); a
   commit that touches none of ``only_when_paths_change`` (``git diff --name-only`` against the
   commit it replaces, in the repository the deploy read its commits from: the gate's mirror,
   not ``[deploy] repository``, which on the gate's host may not hold a pushed commit;
   rehearsed anyway when that cannot be told).
2. The copy's source: the pre-deploy snapshot the snapshot step put in ``facts["snapshot"]``,
   else the newest verified local backup of either kind (said so in the details; a page
   generation is rebuilt from its store, :mod:`railguard.pages.copies`).
3. :func:`railguard.rehearsal.rehearse.rehearse`: for an unattended job (the gate: pushed,
   untrusted code) in command mode under the job's isolation (:attr:`PreDeployContext.isolation`,
   the gate's ``gate.isolation``), with a warning when that isolates nothing. Its report becomes
   the step's details (``--json``), its lines the ``lines`` detail (the CLI's and the gate's run
   log), its summary the step's (which the blocked deploy's notification carries: the failed
   migration when the app named it).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from railguard.backup.catalog import BackupRecord, Owner, list_backups, resolve_backup
from railguard.deploy.git import Git, git_environment_without_git_vars
from railguard.deploy.isolation import NO_ISOLATION
from railguard.deploy.steps import PreDeployContext, StepResult, pre_deploy_step
from railguard.errors import RailguardError
from railguard.pages.catalog import list_generations
from railguard.pages.copies import AnyRecord, newest_good

NAME = "rehearsal"
#: Said in every unattended (gate) rehearsal in command mode whose isolation isolates nothing
#: (docs/deploy.md, "Rehearsed deploys").
UNSANDBOXED = ("the pushed commit's app ran as railguard's own user and could read railguard's secrets "
               "(gate.isolation isolates nothing here): install bubblewrap, set gate.isolation = \"user:NAME\", "
               "or use Docker mode ([drill] image), where it sees only the copy")


@pre_deploy_step(NAME)
def rehearsal_step(context: PreDeployContext) -> StepResult:
    """Rehearse ``context.commit`` on a copy of the snapshot; failed when the candidate does not boot."""
    app = context.app
    if not app.rehearsal.is_enabled(app.drill):
        why = (f"no [apps.{context.app_name}.drill] command or image" if app.rehearsal.enabled is None
               else f"[apps.{context.app_name}.rehearsal] enabled = false")
        return StepResult.skip(NAME, f"off ({why})")
    if context.kind == "rollback":
        return StepResult.skip(NAME, "a rollback is not rehearsed (it must not be blocked)")
    if context.tar is None or context.commit is None:
        return StepResult.skip(NAME, "no tree to rehearse (an image rollback or the legacy branch build)")
    repository = context.repository or Path(app.deploy.repository)
    untouched = _untouched(app.rehearsal.only_when_paths_change, repository, context.replaces, context.commit)
    if untouched is not None:
        return StepResult.skip(NAME, untouched)
    backup, source = _copy_source(context)
    # Here, not at the top: every deploy command imports the list of steps, few of them rehearse.
    from railguard.rehearsal.rehearse import rehearse

    # Pushed code (the gate's) runs as its test suite does, under the gate's isolation, the
    # host's network shared; Docker mode keeps it in a container already. A person deploying
    # their own checkout (the CLI) runs their own code: no sandbox.
    pushed = context.unattended and not app.drill.image
    isolation = context.isolation if pushed else NO_ISOLATION
    report = rehearse(context.settings, context.app_name, app, tar=context.tar, commit=context.commit,
                      backup=backup, now=context.clock(), env=os.environ, isolation=isolation)
    if pushed and not isolation.isolated:
        report.warnings.append(UNSANDBOXED)
    details: dict[str, Any] = {**report.as_dict(), "source": source, "lines": report.lines()}
    return StepResult(NAME, report.passed, report.summary(), details=details)


def _copy_source(context: PreDeployContext) -> tuple[AnyRecord, str]:
    """The snapshot step's backup, else the newest verified local backup of either kind (a page
    generation is rebuilt for the copy). The snapshot step leaves a ``PreDeploySnapshot`` whose
    ``record()`` is its catalog record (or raises when the snapshot went missing since: then the
    step fails, rather than rehearse on another copy)."""
    snapshot = context.facts.get("snapshot")
    record = snapshot if isinstance(snapshot, BackupRecord) else getattr(snapshot, "record", None)
    if callable(record):
        record = record()
    if isinstance(record, BackupRecord):
        return record, "pre-deploy snapshot"
    app = context.app
    owner = Owner.of(context.settings, context.app_name, app)
    newest = newest_good([*list_backups(app.backup.directory, owner), *list_generations(app.backup.directory, owner)])
    if newest is None:  # resolve_backup says so in its words, with its hint
        return resolve_backup(app.backup.directory, owner, "latest"), ""
    return newest, "newest verified backup (no pre-deploy snapshot)"


def _untouched(globs: Sequence[str], repository: Path, replaces: str | None, commit: str) -> str | None:
    """Why ``commit`` need not be rehearsed (it changes no path matching ``globs``), or None."""
    if not globs:
        return None
    if replaces is None:
        return None  # the first deploy: everything is new
    try:
        changed = Git(repository, git_environment_without_git_vars()).text(
            "diff", "--name-only", "--no-renames", replaces, commit, "--").splitlines()
    except RailguardError:
        return None  # no repository here, or it lacks one of the commits: rehearse rather than guess
    if any(fnmatch.fnmatchcase(path, glob) for path in changed for glob in globs):
        return None
    return (f"{commit[:12]} changes none of {', '.join(globs)} since {replaces[:12]} "
            f"({len(changed)} path(s) changed)")
