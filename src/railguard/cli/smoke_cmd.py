"""``railguard smoke``: after a deploy, prove a new, healthy process serves the right commit."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from railguard.cli import output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.config import Settings
from railguard.errors import ConfigError, ExitCode, UsageError
from railguard.notify.notifier import notifier_for
from railguard.smoke import SmokeReport, notify_result, run_smoke
from railguard.smoke.record import keep_smoke_result

pass_context = click.make_pass_decorator(Context)


@cli.command()
@click.option("--url", metavar="URL", help="Base URL of the app [apps.NAME.url].")
@click.option("--since", metavar="TIME",
              help="When the deploy started (ISO 8601, or epoch seconds); the serving process must have "
                   "started after it. Default: the start of the last deploy railguard recorded.")
@click.option("--commit", metavar="SHA", help="The commit that must be serving (/version or *_build_info); "
                                                "default: the last recorded deploy's commit.")
@click.option("--wait", metavar="DURATION", help="Keep trying this long [smoke.wait].")
@click.option("--notify/--no-notify", "send", default=None,
              help="Send 'deploy OK <commit>' (once per commit) or 'deploy failed' [smoke.notify_ok].")
@output.json_option
@pass_context
def smoke(ctx: Context, url: str | None, since: str | None, commit: str | None, wait: str | None,
          send: bool | None, as_json: bool) -> int:
    """Wait for /health 200, then require migrations_ok == 1 and app_started_at later than the
    deploy's start in /metrics, and the expected commit in /version (or a *_build_info metric).

    Polls until every check passes or the wait runs out. Exit 0 when it passes, 7 when not.
    """
    settings, name, app = ctx.app({"app.url": ("--url", url), "app.smoke.wait": ("--wait", wait)})
    if not app.url:
        raise ConfigError(f"no URL for the app {name}", hint=f"Give --url, or set url under [apps.{name}]")
    started, default_commit = _deploy_start(settings, name, since)
    report = run_smoke(name, app.url, app.smoke, deploy_started_at=started,
                       expected_commit=commit or default_commit)
    now = ctx.now()
    if send if send is not None else app.smoke.notify_ok:
        notify_result(notifier_for(settings), report, now=now)
    keep_smoke_result(settings.state_dir, report.app, ok=report.ok, summary=report.summary, commit=report.commit,
                      now=now)
    _render(report, as_json)
    return ExitCode.OK if report.ok else ExitCode.CHECK_FAILED


def _render(report: SmokeReport, as_json: bool) -> None:
    if as_json:
        output.emit_json(report.as_dict())
        return
    for check in report.checks:
        click.echo(f"{'ok    ' if check.ok else 'FAILED'} {check.name}: {check.detail}")
    click.echo(report.summary)
    if report.notification is not None and report.notification.status in {"sent", "duplicate", "failed"}:
        click.echo(f"notification {report.notification.event}: {report.notification.status}")


def _deploy_start(settings: Settings, name: str, since: str | None) -> tuple[datetime, str | None]:
    if since is not None:
        return parse_time(since), None
    from railguard.deploy.state import last_deploy

    last = last_deploy(settings.state_dir, settings.apps[name].deploy.state_file, name)
    if last is None:
        raise UsageError("no deploy start time to compare the app's start with",
                         hint="Give --since TIME (ISO 8601 or epoch seconds), or deploy with railguard deploy")
    return last.started_at, last.git_hash


def parse_time(text: str) -> datetime:
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return datetime.fromtimestamp(number, timezone.utc)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since: expected an ISO 8601 time or epoch seconds, got {text!r}",
                         hint="For example --since 2026-11-27T04:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
