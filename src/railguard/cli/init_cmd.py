"""``railguard init (--runtime {bun,node,python} | --scheduler {systemd,systemd-timers,cron}) [DIR]
[--print] [--force]``."""

from __future__ import annotations

import click

from railguard.cli import output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.errors import ExitCode
from railguard.init import (RUNTIMES, SCHEDULERS, PlannedFile, RuntimeOptions, SchedulerOptions, next_steps,
                            railguard_command, render_for_print, runtime_files, scheduler_files, write_files)

pass_context = click.make_pass_decorator(Context)


@cli.command("init")
@click.argument("directory", default=".", metavar="[DIR]")
@click.option("--runtime", type=click.Choice(sorted(RUNTIMES)),
              help="Write the deploy files for this runtime: Dockerfile with a strict HEALTHCHECK, startup.sh, "
                   ".dockerignore, captain-definition, railguard.toml.")
@click.option("--scheduler", type=click.Choice(SCHEDULERS),
              help="Write the host scheduler's files for the jobs the configuration enables: systemd "
                   "(railguard.service running the daemon), systemd-timers (a .service + .timer per job) or cron "
                   "(a file for /etc/cron.d). See docs/install.md.")
@click.option("--user", metavar="NAME", help="With --scheduler: run the jobs as this user (default root).")
@click.option("--command", "start_command", metavar="TEXT",
              help="The app's start command, exec'd by startup.sh (default: bun run index.ts / node index.js / "
                   "python3 app.py).")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True,
              help="Default PORT (the app must read PORT from the environment).")
@click.option("--database", default="/app/data/tasks.db", show_default=True, metavar="PATH",
              help="The database inside the container; its directory becomes the VOLUME.")
@click.option("--app-name", default="tasks", show_default=True, metavar="NAME",
              help="The app's name in railguard.toml.")
@click.option("--base-image", metavar="IMAGE", help="FROM this image (default: oven/bun:1, node:20-bookworm-slim, "
                                                       "python:3.11-slim-bookworm).")
@click.option("--print", "print_only", is_flag=True, help="Print the files instead of writing them.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@output.json_option
@pass_context
def init_command(ctx: Context, directory: str, runtime: str | None, scheduler: str | None, user: str | None,
                 start_command: str | None, port: int, database: str, app_name: str, base_image: str | None,
                 print_only: bool, force: bool, as_json: bool) -> int:
    """Write (or print) the deploy files the plan asks for.

    Never overwrites an existing file without --force: when one exists, nothing is written.
    """
    planned: list[PlannedFile] = []
    if runtime and scheduler:
        raise click.UsageError("give --runtime or --scheduler, not both: their files go to different places")
    if scheduler:
        planned += scheduler_files(ctx.settings(), SchedulerOptions(kind=scheduler, railguard=railguard_command(),
                                                                    user=user))
    if runtime:
        if not database.startswith("/") or database.endswith("/"):
            raise click.BadParameter("give the database file's absolute path inside the container",
                                     param_hint="--database")
        if not app_name.replace("-", "").replace("_", "").isalnum():
            raise click.BadParameter("use letters, digits, - and _ only", param_hint="--app-name")
        planned += runtime_files(RuntimeOptions(runtime=runtime, command=start_command, port=port,
                                                database=database, app_name=app_name, base_image=base_image))
    if not planned:
        raise click.UsageError("say what to write: --runtime bun|node|python or "
                               "--scheduler systemd|systemd-timers|cron")
    if print_only:
        if as_json:
            output.emit_json({"ok": True, "files": [{"name": f.name, "mode": f"{f.mode:o}", "content": f.content}
                                                    for f in planned]})
        else:
            click.echo(render_for_print(planned), nl=False)
        return ExitCode.OK
    written = write_files(directory, planned, force=force)
    steps = next_steps(scheduler, planned, directory) if scheduler else ["railguard doctor " + directory]
    if as_json:
        output.emit_json({"ok": True, "written": [str(path) for path in written], "next": steps})
        return ExitCode.OK
    for path in written:
        click.echo(f"wrote {path}")
    for step in steps:
        click.echo("next: " + step)
    return ExitCode.OK


