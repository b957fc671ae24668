"""The root command group: global options, error rendering and exit codes.

The global options (``--config``, ``--app``, ``--json``, ``--quiet``, ``-v``) are declared once,
in :func:`global_options`, and every command and group gets them (:class:`RailguardCommand`,
:class:`CommandGroup`): ``railguard backups list --config x`` means what ``railguard --config x
backups list`` means, as in restic and borg. A value given after the subcommand wins over one
given before it; ``--json``, ``--quiet`` and ``-v`` given anywhere turn their mode on.
"""

from __future__ import annotations

import functools
import gc
import importlib
import signal
import sys
import threading
from typing import Any

import click

from railguard import __version__
from railguard.cli import examples, output, renamed
from railguard.cli.context import Context
from railguard.errors import ExitCode, RailguardError

EPILOG = "\b\nExit codes:\n" + ExitCode.describe()


#: Which module defines each command, in the order of the help. A module is imported only when
#: one of its commands runs (or for --help): `railguard backup` under cron, the pre-receive hook
#: and the daemon's jobs do not pay for the gate's web stack or apprise.
COMMAND_MODULES = {
    "backup": "backup_cmd", "backups": "backup_cmd", "prune": "prune_cmd", "restore": "restore_cmd",
    "replicate": "dest_cmd", "drill": "drill_cmd",
    "deploy": "deploy_cmd", "rollback": "deploy_cmd", "deploys": "deploy_cmd", "release": "release_cmd",
    "hook": "hook_cmd", "gate": "gate_cmd",
    "probe": "probe_cmd", "doctor": "doctor_cmd", "init": "init_cmd",
    "smoke": "smoke_cmd", "notify": "notify_cmd", "monitor": "monitor_cmd", "status": "status_cmd",
    "daemon": "daemon_cmd", "schedule": "daemon_cmd", "web": "web_cmd",
}

#: The first sentence of each command's help, for the root's ``--help``: click would import every
#: command module (pydantic, rich, boto3, ...) to ask each command for it. A test keeps each entry
#: equal to the real command's (tests/test_cli_startup.py); a command missing here is imported.
COMMAND_SUMMARIES = {
    "backup": "Take a verified online backup of the app's database.",
    "backups": "List and verify the backups of an app.",
    "prune": "Remove the backups that the retention policy does not keep.",
    "restore": "Restore backup NAME (default: latest, the newest verified one).",
    "replicate": "Copy backups to the off-host destinations and verify each copy there.",
    "drill": "Restore backup NAME into a temporary directory and prove it boots the app.",
    "deploy": "Deploy exactly the commit REF names (default HEAD) to CapRover.",
    "rollback": "Go back to an earlier version: deploy its image again (FROM <image>).",
    "deploys": "The deploys railguard made (and CapRover's own version list in login mode).",
    "release": "Test, tag vX.Y.Z, push the tag, and deploy exactly that tag's commit.",
    "hook": "Option B: a pre-receive hook that runs the tests before a push to a protected branch lands.",
    "gate": "Option C: Forgejo webhooks in, tested commits deployed to CapRover (docs/gate.md).",
    "probe": "Strict HTTP check for a Docker HEALTHCHECK (exit 0 or 1).",
    "doctor": "Check a repository's deploy files: HEALTHCHECK, start script, .dockerignore, captain-definition, "
              "PORT, the database volume.",
    "init": "Write (or print) the deploy files the plan asks for.",
    "smoke": "Wait for /health 200, then require migrations_ok == 1 and app_started_at later than the deploy's "
             "start in /metrics, and the expected commit in /version (or a *_build_info metric).",
    "notify": "Notifications through apprise URLs (Telegram, Discord, e-mail, ntfy, JSON webhooks...).",
    "monitor": "Check every target (default: each app's url + /health) every interval; alert on DOWN after N "
               "consecutive failures and on RECOVERED after M successes, with the outage's length.",
    "status": "Last backup and its age, last verified, last drill, last deploy and smoke result, monitor.",
    "daemon": "Run every enabled job on its schedule, in one long-running process.",
    "schedule": "Show every job the daemon runs, its schedule, its next run and its last success.",
    "web": "Serve the status page: each app's state, backups, drills, deploys and uptime, with charts.",
}


def _set_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Context).config_path = value


def _set_app(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Context).app_name = value


CONFIG_HELP = "Configuration file (default: ./railguard.toml if present, else built-in defaults)."
APP_HELP = "Which app of the configuration (needed when it has several)."
QUIET_HELP = "Print nothing on stdout on success (for cron); errors and warnings still go to stderr."
VERBOSE_HELP = "Log railguard's events on stderr (-vv: debug)."


def global_options(*, with_json: bool = True) -> list[click.Option]:
    """The options every command accepts after its name (the root's own come from its decorators).

    ``--json`` comes here only for a command that does not declare it itself (through
    :func:`railguard.cli.output.json_option`, which passes it to the callback)."""
    options = [
        click.Option(["--config", "config_path"], metavar="PATH", expose_value=False, callback=_set_config,
                     help=CONFIG_HELP),
        click.Option(["--app", "app_name"], metavar="NAME", expose_value=False, callback=_set_app, help=APP_HELP),
    ]
    if with_json:
        options.append(click.Option(["--json", "as_json"], is_flag=True, is_eager=True, expose_value=False,
                                    callback=output.remember_json, help=output.JSON_HELP))
    options += [
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=output.remember_quiet,
                     help=QUIET_HELP),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=output.remember_verbosity,
                     help=VERBOSE_HELP),
    ]
    return options


def _add_global_options(command: click.Command) -> None:
    taken = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for option in global_options(with_json="--json" not in taken):
        if not taken.intersection(option.opts):
            command.params.append(option)
    if command.callback is not None:
        command.callback = _in_command_modes(command.callback)


def _in_command_modes(callback: Any) -> Any:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        collect_garbage_from_here()
        with output.command_modes():
            return callback(*args, **kwargs)

    return run


def collect_garbage_from_here() -> None:
    """The start-up is over (the command's module and what it imports are loaded): the
    collector, which the console script turns off while it starts (railguard.entrypoint), is on
    for the command's own work, however long it runs (the daemon, the monitor, the web page).

    What the start-up built is frozen first (``gc.freeze``: kept out of every later collection;
    it is freed by reference counting as ever): it lives as long as the process, and the first
    collections would otherwise walk all of it (a sixth of ``railguard status``'s time). A
    caller that never turned the collector off (tests, ``python -m railguard``) is left alone.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _format_examples(ctx: click.Context, formatter: click.HelpFormatter) -> None:
    block = examples.epilog_for(ctx.command_path)
    if block:
        formatter.write_paragraph()
        formatter.write_text(block)


class RailguardCommand(click.Command):
    """A command with the global options (see the module's docstring) and its examples.

    :class:`CommandGroup` is one too (before :class:`click.Group` in its bases), so both are
    said here once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _add_global_options(self)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _format_examples(ctx, formatter)


class CommandGroup(RailguardCommand, click.Group):
    """A group of commands (``backups``, ``gate``, ...): it and its commands get the global options."""

    command_class = RailguardCommand

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        # An old name (``gate runs``) still works for one release, hidden from the help.
        return super().get_command(ctx, name) or renamed.resolve_command(self, ctx, name)


CommandGroup.group_class = CommandGroup


class RailguardGroup(click.Group):
    """Loads command modules lazily, and turns every expected failure into one line, a hint and
    a documented exit code."""

    command_class = RailguardCommand
    group_class = CommandGroup

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _format_examples(ctx, formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMAND_MODULES)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click.Group.format_commands, with each summary from COMMAND_SUMMARIES instead of the
        # command itself: `railguard --help` imports no command module. A stand-in command
        # shortens a summary exactly as click shortens the real help.
        commands = [(name, self.summary_command(ctx, name)) for name in self.list_commands(ctx)]
        commands = [(name, command) for name, command in commands if not command.hidden]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def summary_command(self, ctx: click.Context, name: str) -> click.Command:
        """The command ``name`` itself once loaded (or when COMMAND_SUMMARIES lacks it), else a
        stand-in that has only its summary."""
        if name in self.commands or name not in COMMAND_SUMMARIES:
            command = self.get_command(ctx, name)
            if command is not None:
                return command
        return click.Command(name, help=COMMAND_SUMMARIES.get(name, ""))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMAND_MODULES:
            # The module registers its commands on this group as it is imported.
            importlib.import_module(f"railguard.cli.{COMMAND_MODULES[name]}")
        return self.commands.get(name)

    #: True when this group is the whole process (the console script, ``python -m railguard``),
    #: False when a caller runs it in-process (tests): only the latter gets its handler back.
    owns_process = False

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        global _command_running
        previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _in_main_thread() else None
        _command_running = True
        modes = output.start_command()
        try:
            result = super().main(args, prog_name or "railguard", complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:  # click's form of KeyboardInterrupt (and of SIGTERM, below)
            output.error("interrupted; cleaned up", None, code=ExitCode.INTERRUPTED)
            sys.exit(ExitCode.INTERRUPTED)
        except click.UsageError as exc:
            # click stops at a bad option before any callback ran, --json's included: a script
            # that asked for JSON still gets its one document (docs/exit-codes.md).
            with output.json_mode_if(_asks_for_json(args)):
                output.error(exc.format_message(), _usage_hint(exc), code=ExitCode.USAGE)
            sys.exit(ExitCode.USAGE)
        except click.ClickException as exc:
            with output.json_mode_if(_asks_for_json(args)):
                output.error(exc.format_message(), None, code=ExitCode.USAGE)
            sys.exit(ExitCode.USAGE)
        except RailguardError as exc:
            output.error(exc.message, exc.hint, code=exc.exit_code)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            output.error("interrupted; cleaned up", None, code=ExitCode.INTERRUPTED)
            sys.exit(ExitCode.INTERRUPTED)
        finally:
            output.end_command(modes)
            _command_running = False
            if previous is not None and not self.owns_process:
                signal.signal(signal.SIGTERM, previous)
        sys.exit(int(result) if isinstance(result, int) else ExitCode.OK)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


_command_running = False


def _raise_interrupt(signum: int, frame: Any) -> None:
    # SIGTERM (docker stop, systemd, the daemon) takes the same clean-up path as Ctrl-C while a
    # command runs. Once it has finished, the process is on its way out with the command's exit
    # code: a late SIGTERM must not turn a finished backup into "killed".
    if _command_running:
        raise KeyboardInterrupt


def _asks_for_json(args: Any) -> bool:
    """``--json`` among the command line's options (before a ``--`` that ends them)."""
    words = list(sys.argv[1:] if args is None else args)
    return "--json" in words[:words.index("--")] if "--" in words else "--json" in words


def _usage_hint(exc: click.UsageError) -> str:
    command = exc.ctx.command_path if exc.ctx else "railguard"
    return f"Try: {command} --help"


@click.group(cls=RailguardGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="railguard")
@click.option("--config", "config_path", metavar="PATH", envvar="RAILGUARD_CONFIG", show_envvar=True,
              help=CONFIG_HELP)
@click.option("--app", "app_name", metavar="NAME", help=APP_HELP)
@click.option("--json", "as_json", is_flag=True, is_eager=True, expose_value=False, callback=output.remember_json,
              help=output.JSON_HELP)
@click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=output.remember_quiet, help=QUIET_HELP)
@click.option("-v", "--verbose", count=True, expose_value=False, callback=output.remember_verbosity,
              help=VERBOSE_HELP)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, app_name: str | None) -> None:
    """Verified SQLite backups, deploy guardrails and early failure detection for a
    self-hosted app.

    The global options work before or after the command's name, on every command."""
    ctx.obj = Context(config_path=config_path, app_name=app_name)


def main() -> None:
    cli.owns_process = True
    cli.main()
