"""``railguard gate serve`` (the webhook gate) and ``railguard gate list`` (its queue, read locally)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from railguard.cli import output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.errors import ExitCode

pass_context = click.make_pass_decorator(Context)


@cli.group()
def gate() -> None:
    """Option C: Forgejo webhooks in, tested commits deployed to CapRover (docs/gate.md)."""


@gate.command("serve")
@click.option("--host", metavar="ADDRESS", help="Address to listen on [gate.host].")
@click.option("--port", type=int, metavar="PORT", help="Port to listen on [gate.port].")
@pass_context
def serve_command(ctx: Context, host: str | None, port: int | None) -> int:
    """Serve POST /hooks/forgejo, POST /api/v1/check, GET /runs, /runs/ID, /healthz and /metrics.

    Each verified push to an app's branch is queued; one worker per app tests the newest queued
    commit in a clean environment, posts Forgejo commit statuses, deploys exactly that commit,
    runs the smoke check and rolls back when it fails. Secrets come from the environment only:
    $RAILGUARD_GATE_SECRET (webhook), $FORGEJO_TOKEN, $RAILGUARD_GATE_CHECK_SECRET (hook), and
    the CapRover token of each app. Stops cleanly on SIGTERM; a run cut short is queued again
    at the next start.
    """
    import uvicorn

    from railguard.gate.app import create_app
    from railguard.gate.service import GateService
    from railguard.rehearsal.steps import deploy_steps
    from railguard.webserver import ConnectionLimits, uvicorn_options

    settings = ctx.settings({"gate.host": ("--host", host), "gate.port": ("--port", port)})
    from railguard.logfmt import LogfmtFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())  # the one timestamp format (docs/cli.md)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    service = GateService(settings, steps_for=deploy_steps)
    click.echo(f"railguard gate: {', '.join(service.targets)} on {settings.gate.listen.url} "
               f"(state in {service.directory})", err=True)
    uvicorn.run(create_app(service), host=settings.gate.host, port=settings.gate.port, log_level="warning",
                access_log=False, lifespan="on", **uvicorn_options(ConnectionLimits.from_settings(settings.gate)))
    return ExitCode.OK


@gate.command("list")
@click.option("--limit", type=int, default=20, show_default=True, help="How many runs, newest first.")
@output.json_option
@pass_context
def runs_command(ctx: Context, limit: int, as_json: bool) -> int:
    """List the gate's latest runs from its queue file (no running gate needed)."""
    from railguard.gate.queue import gate_directory, recent_runs

    settings = ctx.settings()
    directory = gate_directory(settings)
    runs = recent_runs(settings, limit=limit)
    if as_json:
        output.emit_json({"runs": [run.as_json() for run in runs]})
        return ExitCode.OK
    if not runs:
        click.echo(f"no runs in {directory}")
    for run in runs:
        click.echo(f"#{run.id:<5} {run.app:<12} {run.commit_sha[:12]}  {run.status:<13} {run.summary[:80]}")
    return ExitCode.OK


def install_remote_command(ctx: Context, git_dir: Path, url: str, secret_file: Path | None) -> int:
    """``railguard hook install GIT_DIR --remote URL``: the sh hook that asks the gate (see hook_cmd)."""
    from railguard.deploy.hook.remote import install_remote_hook
    from railguard.secrets import read_secret

    settings, name, _ = ctx.app()
    secret = read_secret(settings.gate.check_secret_env)
    installation = install_remote_hook(git_dir, url=url, app=name, secret=secret, secret_file=secret_file)
    click.echo(f"installed {installation.path} (POSIX sh: git archive + curl to {url.rstrip('/')}/api/v1/check)")
    if installation.chained:
        click.echo(f"the existing hook now runs first from {installation.chained}")
    click.echo(f"{'wrote' if installation.secret_written else 'kept'} the shared secret in "
               f"{installation.secret_file} (mode 0600); the gate reads it from ${settings.gate.check_secret_env}")
    click.echo(f"pushes are rejected unless the gate answers pass (app {name}); no answer rejects too")
    return ExitCode.OK
