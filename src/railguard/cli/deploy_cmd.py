"""``railguard deploy [REF]``, ``railguard rollback [--to VERSION|SHA]``, ``railguard deploys list``."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from railguard.cli import options, output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.config import AppSettings, Settings
from railguard.deploy import DeployJob, DeployReport, DeployState, build_deployer, deploy_commit, rollback
from railguard.deploy.caprover import BuildFailed
from railguard.deploy.steps import DeployBlocked, StepResult, StepStatus
from railguard.deploy.git import Git
from railguard.deploy.state import state_path
from railguard.errors import RailguardError
from railguard.rehearsal.data_rollback import (RESTORED_FACT, DataCheck, DataRestore, check_data, live_commit,
                                               require_snapshot, restore_step)
from railguard.rehearsal.steps import deploy_steps
from railguard.restore import check_not_in_use

_T = TypeVar("_T")

pass_context = click.make_pass_decorator(Context)


def deploy_job(ctx: Context, repository: str | None = None) -> DeployJob:
    """The deployer, history and repository of the selected app (shared with ``release``)."""
    settings, name, app = ctx.app({"app.deploy.repository": ("--repo", repository)})
    steps = deploy_steps(settings, name, app)
    return DeployJob(settings=settings, app_name=name, app=app, deployer=build_deployer(name, app.deploy),
                     state=history_of(settings, app), git=Git(_absolute(app.deploy.repository)), clock=ctx.now,
                     pre_deploy=steps.pre, post_deploy=steps.post)


def history_of(settings: Settings, app: AppSettings) -> DeployState:
    return DeployState(state_path(settings.state_dir, app.deploy.state_file))


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else Path.cwd() / path


def render_report(report: DeployReport, target: str | None = None) -> None:
    """The human lines for a deploy, release or rollback (``--json`` has the same facts)."""
    record = report.record
    commit = (record.git_hash or "?")[:12]
    if record.kind == "rollback":
        headline = f"rolled back {record.caprover_app} to {target or commit}"
    elif record.kind == "release":
        headline = f"released {record.tag} ({commit}) to {record.caprover_app}"
    else:
        headline = f"deployed {commit} to {record.caprover_app}"
    render_steps(report.pre_steps)
    if record.result == "ok":
        image = f"FROM {record.image}" if record.kind == "rollback" else record.image
        click.echo(f"{headline}: built and running as version {record.version} ({image})")
    else:
        click.echo(f"{headline}: CapRover accepted it and is building "
                   "(an app token cannot see the build; use deploy.mode = \"login\" to wait for it)")
    render_steps(report.steps)


def render_steps(steps: Iterable[StepResult]) -> None:
    """One line per step, then the lines a step gives in ``details["lines"]`` (the rehearsal's
    checks, what the migrations changed, the app's output when it failed)."""
    for step in steps:
        click.echo(f"{_MARK[step.status]} {step.name}: {step.summary}")
        for line in step.details.get("lines") or []:
            click.echo(f"    {line}")


_MARK = {StepStatus.PASSED: "ok    ", StepStatus.SKIPPED: "skip  ", StepStatus.FAILED: "FAILED"}


def report_json(report: DeployReport) -> dict[str, Any]:
    return {"ok": report.exit_code == 0, "deploy": report.record.as_json(), "replaced": report.replaced,
            "target": report.target, "pre_steps": [step_json(s) for s in report.pre_steps],
            "steps": [step_json(s) for s in report.steps]}


def step_json(step: StepResult) -> dict[str, Any]:
    return {"name": step.name, "ok": step.ok, "status": step.status.value, "summary": step.summary,
            "details": step.details}


def _with_build_log(function: Callable[[], _T]) -> _T:
    """Show the tail of CapRover's build log before the one-line error of a failed build, and the
    pre-deploy steps before the error of a blocked deploy."""
    try:
        return function()
    except BuildFailed as exc:
        if not output.json_mode():
            for line in exc.log_tail:
                click.echo(f"  | {line}", err=True)
        raise
    except DeployBlocked as exc:  # what the steps before the deploy found, then the one-line error
        if output.json_mode():  # the one document carries them: the rehearsal's report is the reason
            output.error(exc.message, exc.hint, code=exc.exit_code,
                         more={"pre_steps": [step_json(step) for step in exc.steps]})
            raise click.exceptions.Exit(int(exc.exit_code)) from exc
        render_steps(exc.steps)
        raise


@cli.command()
@click.argument("ref", required=False, default="HEAD")
@options.repository_option
@output.json_option
@pass_context
def deploy(ctx: Context, ref: str, repository: str | None, as_json: bool) -> int:
    """Deploy exactly the commit REF names (default HEAD) to CapRover.

    Uploads `git archive` of the commit with its SHA as gitHash, so CapRover builds that
    tree and nothing else; records the deploy in the history for `railguard rollback`.
    """
    job = deploy_job(ctx, repository)
    report = _with_build_log(lambda: deploy_commit(job, ref))
    if as_json:
        output.emit_json(report_json(report))
    else:
        render_report(report)
    return report.exit_code


@cli.command("rollback")
@click.option("--to", "to", metavar="VERSION|SHA",
              help="A CapRover version number or a commit; default: the deploy before the current one.")
@click.option("--with-data", is_flag=True,
              help="Also restore the pre-deploy snapshot of the deploy rolled back (shows what is lost, asks first).")
@click.option("--yes", is_flag=True, help="With --with-data: do not ask (for scripts).")
@click.option("--force", is_flag=True,
              help="With --with-data: restore even while a process has the database open (as restore --force).")
@options.repository_option
@output.json_option
@pass_context
def rollback_command(ctx: Context, to: str | None, with_data: bool, yes: bool, force: bool, repository: str | None,
                     as_json: bool) -> int:
    """Go back to an earlier version: deploy its image again (FROM <image>).

    With an app token railguard's own history says which image or commit came before; in
    login mode CapRover's version list does. A commit with no recorded image is rebuilt
    from git. Environment variables are not rolled back (CapRover keeps the current ones).

    First it compares the pre-deploy snapshot of the live deploy with the live database: an
    unchanged schema needs nothing more; a changed one is named, and the data stays as it is
    unless --with-data, which shows the rows written since the snapshot (lost by the restore),
    asks, then restores the snapshot with the safe restore (safety copy, in-use check) just
    before the old image goes out. See docs/deploy.md "Data rollback".
    """
    if (yes or force) and not with_data:
        raise click.UsageError("--yes and --force only apply with --with-data")
    job = deploy_job(ctx, repository)
    check = check_data(job.settings, job.app_name, job.app, live_commit(job.state.history(job.app_name)),
                       count_rows=with_data)
    if with_data:
        require_snapshot(check)
        check_not_in_use(job.app.database, force=force)  # before the question: nothing has changed yet
        for line in check.lines():
            click.echo(line, err=as_json)
        _confirm_data_rollback(check, job.app.database, yes)
        job = dataclasses.replace(job, pre_deploy=job.pre_deploy + (restore_step(check, force=force),))
    report = _with_build_log(lambda: rollback(job, to))
    restored = report.facts.get(RESTORED_FACT)
    if as_json:
        output.emit_json({**report_json(report), "data": {
            **check.as_dict(), "restored": restored.as_dict() if isinstance(restored, DataRestore) else None}})
        return report.exit_code
    render_report(report, report.target)
    if isinstance(restored, DataRestore):
        click.echo(f"the data is back as it was in {restored.snapshot}"
                   + (f"; the database it replaced is kept as {restored.safety_copy}" if restored.safety_copy else ""))
        for message in restored.warnings + [f"replaced while in use: {holder}" for holder in restored.forced_past]:
            output.warning(message)
        return report.exit_code
    for line in check.lines():
        click.echo(line)
    if check.schema_changed and check.restore_command:
        click.echo(f"the data was not rolled back: its schema is still the deploy's. To restore the snapshot too "
                   f"(the rows written since are lost): stop the app, then {check.restore_command}")
    return report.exit_code


class DataRollbackNotConfirmed(RailguardError):
    """``rollback --with-data`` without a yes: nothing was changed (exit 2)."""


def _at_a_terminal() -> bool:
    """Someone can answer the question (stdin is a terminal)."""
    return sys.stdin.isatty()


def _confirm_data_rollback(check: DataCheck, database: Path, yes: bool) -> None:
    if yes:
        return
    assert check.snapshot is not None
    what = f"restore {check.snapshot.name} over {database}, losing the rows above"
    if not _at_a_terminal():
        raise DataRollbackNotConfirmed(f"rollback --with-data would {what}; no terminal to confirm it, "
                                       "so nothing was changed",
                                       hint="Read what is lost (run it at a terminal), then add --yes to go ahead")
    if not click.confirm(f"Roll back the image and {what}?", default=False, err=True):
        raise DataRollbackNotConfirmed("not confirmed: nothing was changed",
                                       hint="Roll back without --with-data to keep the data as it is")


@cli.group()
def deploys() -> None:
    """The deploys railguard made (and CapRover's own version list in login mode)."""


@deploys.command("list")
@click.option("--caprover", "from_caprover", is_flag=True,
              help="Show CapRover's version list instead (login mode: needs the password).")
@output.json_option
@pass_context
def list_command(ctx: Context, from_caprover: bool, as_json: bool) -> int:
    """Every deploy railguard recorded: when, what commit, which image and version, result."""
    settings, name, app = ctx.app()
    if from_caprover:
        deployer = build_deployer(name, app.deploy)
        listing = deployer.versions()
        if as_json:
            output.emit_json({"ok": True, "app": name, "caprover_app": deployer.app,
                              "deployed_version": listing.deployed_version,
                              "versions": [{"version": v.version, "image": v.image, "git_hash": v.git_hash,
                                            "time": v.time} for v in listing.versions]})
            return 0
        rows = [[("* " if v.version == listing.deployed_version else "  ") + str(v.version), v.time or "-",
                 (v.git_hash or "-")[:12], v.image or "(build failed)"] for v in reversed(listing.versions)]
        output.table(f"CapRover versions of {deployer.app}", ["version", "time", "commit", "image"], rows)
        return 0
    records = history_of(settings, app).history(name)
    if as_json:
        output.emit_json({"ok": True, "app": name, "deploys": [r.as_json() for r in records]})
        return 0
    if not records:
        click.echo(f"no deploys of {name} recorded yet")
        return 0
    now = ctx.now()
    rows = [[str(r.id), r.started_at.strftime("%Y-%m-%d %H:%M UTC"), output.human_age(now - r.started_at), r.kind,
             r.tag or "-", (r.git_hash or "-")[:12], r.image or "-", "-" if r.version is None else str(r.version),
             r.result] for r in records]
    output.table(f"deploys of {name}", ["#", "time", "age", "kind", "tag", "commit", "image", "version", "result"],
                 rows)
    return 0
