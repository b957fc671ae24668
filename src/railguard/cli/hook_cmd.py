"""``railguard hook install|uninstall GIT_DIR`` and ``railguard hook run`` (what the hook calls)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from railguard.cli import output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.deploy.hook.install import install_hook, uninstall_hook
from railguard.deploy.hook.run import run_hook
from railguard.deploy.suite import check_suite_command
from railguard.errors import ConfigError, ExitCode

pass_context = click.make_pass_decorator(Context)


@cli.group()
def hook() -> None:
    """Option B: a pre-receive hook that runs the tests before a push to a protected branch lands."""


@hook.command("install")
@click.argument("git_dir", type=click.Path(path_type=Path))
@click.option("--remote", metavar="URL", help="Write a POSIX sh hook that asks the railguard gate at URL to test "
              "each push (for Forgejo's image, which has no Python; docs/gate.md).")
@click.option("--secret-file", type=click.Path(path_type=Path), metavar="PATH",
              help="With --remote: the file the hook reads the gate's shared secret from, as the hook sees it "
                   "(inside Forgejo's container). Default: GIT_DIR/hooks/railguard-gate.secret, named relative to "
                   "the repository and written from $RAILGUARD_GATE_CHECK_SECRET as the repository's owner.")
@click.option("--python", "python", type=click.Path(path_type=Path), metavar="PATH",
              help="The Python the hook runs railguard with (default: this one). Run as root for a repository "
                   "of the git user, install refuses one that user cannot run.")
@pass_context
def install_command(ctx: Context, git_dir: Path, remote: str | None, secret_file: Path | None,
                    python: Path | None) -> int:
    """Install the hook into the bare repository GIT_DIR (on the Forgejo host).

    Uses hooks/pre-receive.d/ when it exists (Forgejo's layout, kept across its hook resyncs),
    else hooks/pre-receive; an existing pre-receive is kept and still runs first. The hook
    calls this railguard (this Python, this configuration file) by absolute path, or with
    --remote, the gate over HTTP. Run as root on a repository of the git user, it trusts that
    repository (safe.directory) and writes every file as that user.
    """
    if remote is not None:
        from railguard.cli.gate_cmd import install_remote_command

        return install_remote_command(ctx, git_dir, remote, secret_file)
    settings, name, app = ctx.app()
    if settings.source is None:
        raise ConfigError("the hook needs a configuration file with the test command",
                          hint="Write railguard.toml with [apps.NAME.deploy] test_command, then pass --config")
    check_suite_command(app.deploy.test_command, f"apps.{name}.deploy.test_command")
    installation = install_hook(git_dir, config=settings.source.resolve(), app=name,
                                python=str(python.absolute()) if python else sys.executable)
    click.echo(f"installed {installation.path}")
    if installation.chained:
        click.echo(f"the existing hook now runs first from {installation.chained}")
    click.echo(f"pushes to {', '.join(app.deploy.protected_branches)} run: {' '.join(app.deploy.test_command)} "
               f"(timeout {app.deploy.test_timeout.total_seconds():.0f}s)")
    return ExitCode.OK


@hook.command("uninstall")
@click.argument("git_dir", type=click.Path(path_type=Path))
def uninstall_command(git_dir: Path) -> int:
    """Remove railguard's hook from GIT_DIR (a chained hook goes back to its place)."""
    installation = uninstall_hook(git_dir)
    click.echo(f"removed railguard's hook from {installation.path}")
    if installation.chained:
        click.echo(f"restored the previous hook as {installation.path}")
    return ExitCode.OK


@hook.command("run")
@output.json_option
@pass_context
def run_command(ctx: Context, as_json: bool) -> int:
    """Check one push: read git's '<old> <new> <ref>' lines on stdin (called by the hook).

    Exits 0 to accept the push and 7 to reject it; everything it prints reaches the pusher.
    With --json, the verdict for each ref is also one JSON document on stdout.
    """
    settings, name, app = ctx.app()

    def say(line: str) -> None:
        click.echo(f"railguard: {line}", err=True)

    verdict = run_hook(sys.stdin.read(), app.deploy, where=f"apps.{name}.deploy", git_dir=Path.cwd(),
                       env=os.environ, say=say,
                       private=[settings.state_dir])
    if as_json:
        output.emit_json({"ok": verdict.accepted, "app": name, "accepted": verdict.accepted,
                          "refs": [{"ref": r.ref, "accepted": r.accepted, "summary": r.summary}
                                   for r in verdict.refs]})
    return ExitCode.OK if verdict.accepted else ExitCode.CHECK_FAILED
