"""``railguard doctor [DIR] [--fix] [--json]``: static checks of the deploy files."""

from __future__ import annotations

from typing import Any

import click

from railguard.cli import output
from railguard.cli.root import cli
from railguard.doctor import DoctorReport, Severity, diagnose
from railguard.errors import ExitCode


@cli.command()
@click.argument("directory", default=".", metavar="[DIR]")
@click.option("--fix", is_flag=True,
              help="Apply the safe fixes (remove `|| exit 0`, remove a sleep, write .dockerignore) and show the diff.")
@output.json_option
def doctor(directory: str, fix: bool, as_json: bool) -> int:
    """Check a repository's deploy files: HEALTHCHECK, start script, .dockerignore,
    captain-definition, PORT, the database volume.

    Each finding has file:line, a rule id, a severity, the problem and the fix. Exits 7
    (check-failed) when an error is found, 0 otherwise (warnings and info do not fail).
    The rules are tabled in docs/doctor.md.
    """
    report = diagnose(directory, fix=fix)
    if as_json:
        output.emit_json(_document(report))
    else:
        _render(report)
    return ExitCode.CHECK_FAILED if report.has_errors else ExitCode.OK


def _document(report: DoctorReport) -> dict[str, Any]:
    return {
        "ok": not report.has_errors,
        "directory": str(report.directory),
        "counts": {severity.value: report.count(severity) for severity in Severity},
        "findings": [finding.as_dict() for finding in report.findings],
        "fixed": [{"file": edit.name, "created": edit.before is None, "diff": edit.diff()} for edit in report.edits],
    }


def _render(report: DoctorReport) -> None:
    for edit in report.edits:
        click.echo(edit.diff(), nl=False)
    if report.edits:
        click.echo(f"fixed {len(report.edits)} file(s): {', '.join(edit.name for edit in report.edits)}\n")
    for finding in report.findings:
        click.echo(f"{finding.location}: {finding.severity.value} [{finding.rule}] {finding.message}")
        click.echo(f"    fix: {finding.hint}")
    counts = ", ".join(f"{report.count(s)} {s.value}{'s' if report.count(s) != 1 and s is not Severity.INFO else ''}"
                       for s in Severity)
    fixable = sum(1 for f in report.findings if f.fixable)
    more = f"; {fixable} fixable with --fix" if fixable and not report.edits else ""
    verdict = "no problems found" if not report.findings else counts
    click.echo(f"{report.directory}: {verdict}{more}")
