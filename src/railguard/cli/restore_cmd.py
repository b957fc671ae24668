"""``railguard restore``: put a verified backup in place of the app's database (or elsewhere)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from railguard.backup import list_backups, resolve_backup
from railguard.backup.catalog import Owner, bad_manifest_warnings, check_belongs
from railguard.cli import options, output, renamed
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.destinations import fetched_for_restore
from railguard.errors import ExitCode
from railguard.restore import RestoreResult, restore_backup

pass_context = click.make_pass_decorator(Context)


@cli.command()
@click.argument("name", required=False, default="latest")
@click.option("--to", "to", metavar="PATH",
              help="Restore into this file instead of the app's database (the live database is not touched).")
@click.option("--force", is_flag=True, help="Replace the database even while a process has it open.")
@options.directory_option
@options.dest_option("source")
@renamed.renamed_option("restore", "--from", "source")
@options.identity_option
@output.json_option
@pass_context
def restore(ctx: Context, name: str, to: str | None, force: bool, directory: str | None, source: str | None,
            identity: Path | None, as_json: bool) -> int:
    """Restore backup NAME (default: latest, the newest verified one).

    Verifies the backup (hash, decompress, integrity_check) before touching anything, refuses
    while a process has the database open (stop the app first, or --force), keeps a safety copy
    of the current database as DB.before-restore-YYYYMMDD-HHMMSS, then swaps the restored file
    in with one atomic rename. A backup whose manifest names another app, or another database,
    never replaces this app's database (exit 3); --to another file takes it. With --dest NAME,
    the copy held at that destination is fetched and verified first. See docs/restore.md.
    """
    settings, app_name, app = ctx.app({"app.backup.directory": ("--dir", directory)})
    target = Path(to) if to else app.database
    live = _same_file(target, app.database)
    owner = Owner.of(settings, app_name, app)
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(output.progress_bar())
        if source is not None:  # a remote copy, fetched to a temporary directory, then the same verified path
            record = stack.enter_context(fetched_for_restore(app, source, name, now=ctx.now(),
                                                                 identity_file=identity, progress=progress))
        else:
            # Another app's backup (by its manifest) never replaces this app's database; into
            # another file (--to), a backup named explicitly may be anybody's.
            record = resolve_backup(app.backup.directory, owner, name, allow_foreign=not live)
        if live:
            check_belongs(record, owner)
        result = restore_backup(record, target, now=ctx.now(), tz=settings.timezone, force=force,
                                check=app.backup.check, busy_timeout=app.backup.busy_timeout.total_seconds(),
                                log_directory=app.backup.directory if app.backup.directory.is_dir() else None,
                                progress=progress)
    steps = next_steps(result, live=live, url=app.url)
    unusable = bad_manifest_warnings(list_backups(app.backup.directory, owner)) if source is None else []
    if as_json:
        output.emit_json({"ok": True, "app": app_name, "backup": result.backup, "target": result.target,
                          "live_database": live, "safety_copy": result.safety_copy,
                          "journal_mode": result.journal_mode, "forced_past": result.forced_past,
                          "warnings": result.warnings, "unusable_backups": unusable,
                          "seconds": round(result.seconds, 3), "next_steps": steps})
    else:
        click.echo(f"restored {result.backup} → {result.target} (journal_mode {result.journal_mode}, "
                   f"{result.seconds:.1f}s)")
        if result.safety_copy:
            click.echo(f"the previous database is kept as {result.safety_copy}")
        in_use = [f"replaced while in use: {holder}" for holder in result.forced_past]
        for message in result.warnings + in_use + unusable:
            output.warning(message)
        click.echo("next:")
        for number, step in enumerate(steps, 1):
            click.echo(f"  {number}. {step}")
    return ExitCode.WARNING if result.warnings or result.forced_past else ExitCode.OK


def next_steps(result: RestoreResult, *, live: bool, url: str | None) -> list[str]:
    if not live:
        return [f"inspect it: sqlite3 {result.target} '.tables'",
                "the app's database was not touched; to put this backup in place, run restore without --to"]
    health = f"curl -fsS {url.rstrip('/')}/health" if url else "open the app's /health endpoint"
    steps = ["start the app again (CapRover: set the instance count back to 1, or docker start its container)",
             f"check that it serves: {health}"]
    if result.safety_copy:
        steps.append(f"if something is wrong: stop the app, remove {result.target.name}-wal and -shm if present, "
                     f"and move {result.safety_copy} back to {result.target}")
    return steps


def _same_file(one: Path, other: Path) -> bool:
    return one.absolute().resolve() == other.absolute().resolve()
