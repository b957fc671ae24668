"""``railguard status``: the safety net on one screen; exits 7 when anything is flagged, 1 on a warning."""

from __future__ import annotations

import click

from railguard.cli import output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.errors import ExitCode
from railguard.status import collect_status

pass_context = click.make_pass_decorator(Context)


@cli.command()
@output.json_option
@pass_context
def status(ctx: Context, as_json: bool) -> int:
    """Last backup and its age, last verified, last drill, last deploy and smoke result, monitor.

    A row is flagged when the newest backup is older than [status] backup_max_age (26h), the
    newest backup is not verified, the last backup attempt failed, the last drill failed or is
    older than drill_max_age (35d), the last deploy or smoke check failed, or a monitored target
    is DOWN. Exit code 7 (check-failed) when anything is flagged, so this can itself be a check.
    No drill or deploy ever recorded is a warning (exit code 1) when [status] require_drill /
    require_deploy (default: when the app has a drill / a caprover_url), and so is a copy
    marked damaged at a destination (railguard replicate replaces it), or a destination that
    cannot be read to look for one.
    """
    settings = ctx.settings()
    now = ctx.now()
    report = collect_status(settings, now)
    if ctx.app_name is not None:
        settings.app(ctx.app_name)  # an unknown --app is an error, not an empty screen
        report.rows = [row for row in report.rows if row.app in (None, ctx.app_name)]
    if as_json:
        output.emit_json(report.as_dict())
    else:
        rows = [[row.app or "-", row.name, "FLAGGED" if row.flagged else row.state.upper() if row.state == "warning"
                 else row.state,
                 output.human_age(now - row.at) if row.at else "-", row.detail] for row in report.rows]
        output.table(None, ["app", "what", "state", "age", "detail"], rows)
        flagged, warnings = report.flagged, report.warnings
        parts = ([f"{len(flagged)} flagged"] if flagged else []) + ([f"{len(warnings)} warning(s)"] if warnings else [])
        click.echo(", ".join(parts) or "all good")
    if report.flagged:
        return ExitCode.CHECK_FAILED
    return ExitCode.WARNING if report.warnings else ExitCode.OK
