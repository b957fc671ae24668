"""``railguard release [patch|minor|major|X.Y.Z]``: option A, deploy by tag."""

from __future__ import annotations

import click

from railguard.cli import options, output
from railguard.cli.context import Context
from railguard.cli.deploy_cmd import _with_build_log, deploy_job, render_report, report_json
from railguard.cli.root import cli
from railguard.deploy.release import ReleaseTestsFailed, prepare_release, run_release

pass_context = click.make_pass_decorator(Context)


@cli.command()
@click.argument("version", required=False, default="patch", metavar="[patch|minor|major|X.Y.Z]")
@options.dry_run_option
@options.repository_option
@output.json_option
@pass_context
def release(ctx: Context, version: str, dry_run: bool, repository: str | None, as_json: bool) -> int:
    """Test, tag vX.Y.Z, push the tag, and deploy exactly that tag's commit.

    Refuses unless HEAD is on the release branch with a clean tree and not behind its
    remote, and refuses a version that is not greater than the latest tag. CapRover's
    webhook never builds a tag, so railguard uploads the tagged tree itself. --dry-run runs
    the checks and prints every step without doing it.
    """
    job = deploy_job(ctx, repository)
    deploy = job.app.deploy
    plan = prepare_release(job.git, deploy, version, caprover_app=job.deployer.app,
                           where=f"apps.{job.app_name}.deploy")
    if dry_run:
        if as_json:
            output.emit_json({"ok": True, "dry_run": True, "tag": plan.tag, "commit": plan.commit,
                              "latest": str(plan.latest) if plan.latest else None, "steps": plan.steps(),
                              "notes": plan.notes})
        else:
            click.echo(f"dry run: would release {plan.tag} ({plan.commit[:12]}); nothing was changed")
            for number, step in enumerate(plan.steps(), 1):
                click.echo(f"  {number}. {step}")
            for note in plan.notes:
                output.warning(note)
        return 0
    for note in plan.notes:
        output.warning(note)
    if not as_json:
        click.echo(f"releasing {plan.tag} ({plan.commit[:12]}): running {' '.join(plan.test_command)}")
    try:
        report = _with_build_log(lambda: run_release(plan, job, deploy))
    except ReleaseTestsFailed as exc:
        if not as_json:
            for line in exc.run.tail:
                click.echo(f"  | {line}", err=True)
        raise
    if as_json:
        document = report_json(report.deploy)
        document.update({"tag": plan.tag, "commit": plan.commit, "tests": report.tests.summary()})
        output.emit_json(document)
    else:
        click.echo(f"tests: {report.tests.summary()}")
        click.echo(f"tagged {plan.tag} and pushed it to {plan.remote}")
        render_report(report.deploy)
    return report.deploy.exit_code
