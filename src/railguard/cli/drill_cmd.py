"""``railguard drill``: the monthly restore drill that proves a backup boots the app."""

from __future__ import annotations

from pathlib import Path

import click

from railguard.cli import options, output, renamed
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.drill import DrillReport, run_drill
from railguard.metrics import refresh_textfile

pass_context = click.make_pass_decorator(Context)


@cli.command()
@click.argument("which", metavar="[NAME]", required=False)
@renamed.renamed_option("drill", "--backup", "which", metavar="NAME|latest|random")
@options.dest_option("source")
@renamed.renamed_option("drill", "--from", "source")
@options.identity_option
@click.option("--start-timeout", metavar="DURATION", help="How long to wait for /health 200 [drill.start_timeout].")
@output.json_option
@pass_context
def drill(ctx: Context, which: str | None, source: str | None, identity: Path | None, start_timeout: str | None,
          as_json: bool) -> int:
    """Restore backup NAME into a temporary directory and prove it boots the app.

    NAME is a name from `railguard backups list`, latest, or random (any good one); default
    [drill.backup]. With --dest NAME, the backup is fetched from that destination instead of
    the local directory.

    Verifies the backup (sha256, decompression, integrity_check, foreign_key_check), starts the
    app on the copy (the [drill] command, or the image under `docker run --network host`) on a
    free port of 127.0.0.1, waits for /health 200, requires migrations_ok 1 in /metrics, runs
    the SQL assertions, then stops the app and removes the copy. The production database and
    its directory are never touched. One line goes to drill.log next to the backups.

    Exit 0 when the drill passes, 4 when the backup fails verification, 7 when the app does not
    boot or serve on it or an assertion fails, 6 when there is no such backup.
    """
    if identity is not None and source is None:
        raise click.UsageError("--identity only applies with --dest (local backups are not encrypted)")
    settings, name, app = ctx.app({"app.drill.start_timeout": ("--start-timeout", start_timeout)})
    with output.progress_bar() as progress:
        report = run_drill(settings, name, app, now=ctx.now(), which=which, source=source, identity_file=identity,
                           refresh_metrics=refresh_textfile, progress=progress)
    _render(report, as_json)
    return report.exit_code


def _render(report: DrillReport, as_json: bool) -> None:
    if as_json:
        output.emit_json(report.as_dict())
        return
    for step in report.steps:
        click.echo(f"{'ok    ' if step.ok else 'FAILED'} {step.name:<10} {step.seconds:6.1f}s  {step.detail}")
    for message in report.warnings:
        output.warning(message)
    if report.passed:
        click.echo(f"drill PASSED: backup {report.backup} ({report.source}) booted the app "
                   f"in {report.seconds:.1f}s")
        return
    click.echo(f"drill FAILED at {report.failed_step or 'setup'}: {report.reason}")
    if report.hint:
        click.echo(f"  hint: {report.hint}")
    if report.output_tail:
        click.echo("app output (last lines):")
        for line in report.output_tail:
            click.echo(f"  | {line}")
