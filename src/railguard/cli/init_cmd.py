"""``railguard init --runtime {bun,node,python} [DIR] [--print] [--force]``."""

from __future__ import annotations

import click

from railguard.cli.root import cli
from railguard.errors import ExitCode
from railguard.init import RUNTIMES, PlannedFile, RuntimeOptions, render_for_print, runtime_files, write_files


@cli.command("init")
@click.argument("directory", default=".", metavar="[DIR]")
@click.option("--runtime", type=click.Choice(sorted(RUNTIMES)),
              help="Write the deploy files for this runtime: Dockerfile with a strict HEALTHCHECK, startup.sh, "
                   ".dockerignore, captain-definition, railguard.toml.")
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
def init_command(directory: str, runtime: str | None, start_command: str | None, port: int, database: str,
                 app_name: str, base_image: str | None, print_only: bool, force: bool) -> int:
    """Write (or print) the deploy files the plan asks for.

    Never overwrites an existing file without --force: when one exists, nothing is written.
    """
    planned: list[PlannedFile] = []
    if runtime:
        if not database.startswith("/") or database.endswith("/"):
            raise click.BadParameter("give the database file's absolute path inside the container",
                                     param_hint="--database")
        if not app_name.replace("-", "").replace("_", "").isalnum():
            raise click.BadParameter("use letters, digits, - and _ only", param_hint="--app-name")
        planned += runtime_files(RuntimeOptions(runtime=runtime, command=start_command, port=port,
                                                database=database, app_name=app_name, base_image=base_image))
    if not planned:
        raise click.UsageError("say what to write: --runtime bun|node|python")
    if print_only:
        click.echo(render_for_print(planned), nl=False)
        return ExitCode.OK
    for path in write_files(directory, planned, force=force):
        click.echo(f"wrote {path}")
    click.echo("next: railguard doctor " + directory)
    return ExitCode.OK


