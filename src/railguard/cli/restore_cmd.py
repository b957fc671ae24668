"""``railguard restore``: put a verified backup in place of the app's database (or elsewhere)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from railguard.backup import list_backups, resolve_backup
from railguard.backup.catalog import BackupRecord, Owner, bad_manifest_warnings, check_belongs, check_belongs_manifest
from railguard.cli import options, output, renamed
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.destinations import fetched_for_restore
from railguard.errors import ExitCode, NotFound, UsageError
from railguard.pages.catalog import GenerationRecord, is_generation_name, list_generations, resolve_generation
from railguard.pages.store import GENERATION_SUFFIX
from railguard.restore import RestoreResult, restore_backup, restore_generation

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
@click.option("--at", "at", metavar="'YYYY-MM-DD HH:MM'",
              help="Restore the newest verified backup or generation taken at or before this time (in [timezone]).")
@output.json_option
@pass_context
def restore(ctx: Context, name: str, to: str | None, force: bool, directory: str | None, source: str | None,
            identity: Path | None, at: str | None, as_json: bool) -> int:
    """Restore backup NAME (default: latest, the newest verified one).

    Verifies the backup (hash, decompress, integrity_check) before touching anything, refuses
    while a process has the database open (stop the app first, or --force), keeps a safety copy
    of the current database as DB.before-restore-YYYYMMDD-HHMMSS, then swaps the restored file
    in with one atomic rename. A backup whose manifest names another app, or another database,
    never replaces this app's database (exit 3); --to another file takes it. With --dest NAME,
    the copy held at that destination is fetched and verified first. A page generation
    (docs/pages.md) is rebuilt from its store and checked the same way, then put in place by the
    same steps. See docs/restore.md.
    """
    if at is not None and (name != "latest" or source is not None):
        raise UsageError("--at picks the backup by time: give no NAME and no --dest with it",
                         hint="Try: railguard restore --at '2026-12-01 14:05'")
    settings, app_name, app = ctx.app({"app.backup.directory": ("--dir", directory)})
    target = Path(to) if to else app.database
    live = _same_file(target, app.database)
    owner = Owner.of(settings, app_name, app)
    record: BackupRecord | GenerationRecord
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(output.progress_bar())
        if source is not None:  # a remote copy, fetched to a temporary directory, then the same verified path
            record = stack.enter_context(fetched_for_restore(app, source, name, now=ctx.now(),
                                                                 identity_file=identity, progress=progress))
        else:
            # Another app's backup (by its manifest) never replaces this app's database; into
            # another file (--to), a backup named explicitly may be anybody's.
            record = _choose(app.backup.directory, owner, name, at, settings.timezone, allow_foreign=not live)
        if isinstance(record, GenerationRecord):
            if live and record.manifest is not None:
                check_belongs_manifest(record.name, record.manifest, owner)
            result = restore_generation(record, target, now=ctx.now(), tz=settings.timezone, force=force,
                                        check=app.backup.check, busy_timeout=app.backup.busy_timeout.total_seconds(),
                                        progress=progress)
        else:
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


def _choose(directory: Path, owner: Owner, name: str, at: str | None, tz: str, *,
            allow_foreign: bool) -> BackupRecord | GenerationRecord:
    """The backup to restore: by time (``--at``), the newest good one of either kind (``latest``), or by name."""
    if at is not None or name in (None, "latest"):
        moment = _parse_at(at, tz) if at is not None else None
        everything: list[BackupRecord | GenerationRecord] = [*list_backups(directory, owner),
                                                             *list_generations(directory, owner)]
        candidates = [record for record in everything
                      if record.is_good and (moment is None or record.created_at <= moment)]
        if candidates:
            return max(candidates, key=lambda record: (record.created_at, record.id))
        if moment is not None:
            raise NotFound(f"no verified backup or generation taken at or before {at} in {directory}",
                           hint="List them with: railguard backups list")
        return resolve_backup(directory, owner, name, allow_foreign=allow_foreign)  # says why there is none
    if is_generation_name(name) and any(record.name == name.removesuffix(GENERATION_SUFFIX)
                                        for record in list_generations(directory, owner.stem)):
        return resolve_generation(directory, owner, name, allow_foreign=allow_foreign)
    return resolve_backup(directory, owner, name, allow_foreign=allow_foreign)


def _parse_at(text: str, tz: str) -> datetime:
    try:
        moment = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise UsageError(f"--at {text!r} is not a time of the form 'YYYY-MM-DD HH:MM'",
                         hint="Try: railguard restore --at '2026-12-01 14:05'") from None
    # The minute is inclusive: a generation taken at 14:05:40 is "at 14:05".
    return moment.replace(tzinfo=ZoneInfo(tz)) + timedelta(seconds=59.999999)


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
