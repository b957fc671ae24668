"""``railguard backup`` and ``railguard backups list|verify|keep|unkeep``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from railguard.backup import list_backups, resolve_backup
from railguard.backup.catalog import BackupRecord, Owner, bad_manifest_warnings
from railguard.backup.manifest import DeployOrigin
from railguard.backup.protection import protect, read_protections, unkeep, unprotect
from railguard.backup.verify import verify_backups
from railguard.cli import dest_cmd, options, output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.config import AppSettings
from railguard.errors import ExitCode, UsageError
from railguard.jobs import after_backup_lines, backup_job
from railguard.pages.catalog import GenerationRecord, list_generations, resolve_generation
from railguard.pages.store import GenerationManifest
from railguard.pages.verify import verify_generations
from railguard.pages.store import as_dict as generation_document
from railguard.values import parse_duration

pass_context = click.make_pass_decorator(Context)


@cli.command()
@options.database_option
@options.directory_option
@click.option("--method", type=click.Choice(["backup-api", "vacuum-into"]), help="How to copy [backup.method].")
@click.option("--compression", type=click.Choice(["zstd", "gzip", "none"]), help="[backup.compression]")
@click.option("--level", type=int, help="Compression level [backup.level].")
@options.check_option
@click.option("--busy-timeout", metavar="DURATION", help="Retry a locked database this long [backup.busy_timeout].")
@click.option("--prune/--no-prune", default=None, help="Apply the retention policy afterwards [backup.prune].")
@click.option("--keep", "keep", metavar="REASON",
              help="Protect this backup from prune until `railguard backups unkeep` (say why).")
@click.option("--scheduled", is_flag=True,
              help="Run by a schedule (daemon, timer, your own cron line): no [backup.keep_manual] protection.")
@output.json_option
@pass_context
def backup(ctx: Context, database: str | None, directory: str | None, method: str | None, compression: str | None,
           level: int | None, check: str | None, busy_timeout: str | None, prune: bool | None, keep: str | None,
           scheduled: bool, as_json: bool) -> int:
    """Take a verified online backup of the app's database.

    Copies the live database without stopping the app, runs integrity_check on the copy,
    compresses it, and only then gives it its final name. One line goes to backup.log.
    A backup run by hand is protected from prune for [backup.keep_manual] (default 7d),
    or until unkept with --keep REASON. The output names every backup that the prune
    afterwards removed, here and at each destination, and every destination copied to.
    """
    if keep is not None and not keep.strip():
        raise UsageError("--keep needs a reason", hint="Try: railguard backup --keep 'before the migration'")
    settings, name, app = ctx.app({
        "app.database": ("--db", database), "app.backup.directory": ("--dir", directory),
        "app.backup.method": ("--method", method), "app.backup.compression": ("--compression", compression),
        "app.backup.level": ("--level", level), "app.backup.check": ("--check", check),
        "app.backup.busy_timeout": ("--busy-timeout", busy_timeout), "app.backup.prune": ("--prune", prune),
    })
    with output.progress_bar() as progress:
        report = backup_job(settings, name, app, now=ctx.now(), progress=progress, manual=not scheduled,
                            keep=keep)
    result, manifest = report.backup, report.backup.manifest
    protection = report.protection.as_dict() if report.protection else None
    if as_json:
        document = generation_document(manifest) if isinstance(manifest, GenerationManifest) else asdict(manifest)
        output.emit_json({"ok": True, "app": name, "file": result.path, "warnings": report.warnings,
                          "manifest": document, "protection": protection, "steps": report.steps})
    elif isinstance(manifest, GenerationManifest):
        click.echo(f"generation {result.path} ({output.human_size(manifest.size_raw)}, {manifest.new_pages} of "
                   f"{manifest.page_count} pages new → {output.human_size(manifest.new_bytes)} stored, "
                   f"{manifest.check}_check {manifest.check_result}, {manifest.durations['total']:.1f}s)")
    else:
        click.echo(f"backup {result.path} ({output.human_size(manifest.size_raw)} → "
                   f"{output.human_size(manifest.size_stored)}, {manifest.check}_check {manifest.check_result}, "
                   f"{manifest.durations['total']:.1f}s)")
    if not as_json:
        for line in after_backup_lines(report.protection.describe() if report.protection else None, report.steps):
            click.echo(line)
        for message in report.warnings:
            output.warning(message)
    return report.exit_code


@cli.group()
def backups() -> None:
    """List and verify the backups of an app."""


@backups.command("list")
@options.database_option
@options.directory_option
@options.dest_option()
@output.json_option
@pass_context
def list_command(ctx: Context, database: str | None, directory: str | None, dest: str | None, as_json: bool) -> int:
    """Show every backup: name, time, size, ratio, verified, age, protection.

    A pre-deploy snapshot also names its deploy: the commit it came before and the one that
    commit replaced (`railguard rollback --with-data` restores it).

    With --dest NAME, the copies held at that destination instead of the local backups.
    """
    settings, name, app = ctx.app({"app.database": ("--db", database), "app.backup.directory": ("--dir", directory)})
    if dest is not None:
        return dest_cmd.list_remote(ctx, name, app, dest, as_json)
    owner = Owner.of(settings, name, app)
    records = list_backups(app.backup.directory, owner)
    # Page generations (docs/pages.md) are backups too: listed with the whole-file ones, by time.
    generations = list_generations(app.backup.directory, owner)
    listed: list[BackupRecord | GenerationRecord] = sorted([*records, *generations],
                                                           key=lambda record: (record.created_at, record.id))
    now = ctx.now()
    protections = {key: value for key, value in read_protections(app.backup.directory).items() if value.active(now)}
    for message in bad_manifest_warnings(records) + [
            f"generation {record.name} is not usable: {record.reason}; inspect {record.manifest_path}"
            for record in generations if not record.is_good]:
        output.warning(message)
    if as_json:
        output.emit_json({"ok": True, "app": name, "directory": app.backup.directory,
                          "backups": [_listed(r, protections) for r in listed]})
        return ExitCode.OK
    if not listed:
        click.echo(f"no backups in {app.backup.directory}")
        return ExitCode.OK
    rows = []
    for r in listed:
        m = r.manifest
        size = f"{output.human_size(m.size_stored)}{' new' if isinstance(r, GenerationRecord) else ''}" if m else "-"
        rows.append([r.name, r.created_at.strftime("%Y-%m-%d %H:%M"), size,
                     f"{m.size_stored / m.size_raw if m.size_raw else 1.0:.0%}" if m else "-",
                     "yes" if r.is_good else f"no ({r.status})", output.human_age(now - r.created_at),
                     _protected_cell(protections.get(r.name)),
                     _deploy_cell(r.manifest.deploy if isinstance(r, BackupRecord) and r.manifest else None)])
    output.table(f"backups in {app.backup.directory}",
                 ["name", "time (UTC)", "size", "ratio", "verified", "age", "protected", "pre-deploy snapshot"],
                 rows)
    return ExitCode.OK


def _listed(r: BackupRecord | GenerationRecord, protections: dict[str, Any]) -> dict[str, Any]:
    """One backup of ``backups list --json``; a generation's ``file`` is its manifest, its size what it added."""
    protection = protections[r.name].as_dict() if r.name in protections else None
    if isinstance(r, GenerationRecord):
        m = r.manifest
        return {"name": r.name, "kind": "pages", "file": r.manifest_path.name, "status": r.status, "good": r.is_good,
                "created_at": r.created_at, "size_raw": m.size_raw if m else None,
                "size_stored": m.new_bytes if m else None, "compression": "zstd", "pages": m.page_count if m else None,
                "new_pages": m.new_pages if m else None, "protection": protection, "deploy": None}
    return {"name": r.name, "kind": "file", "file": r.data_path.name if r.data_path else None, "status": r.status,
            "good": r.is_good, "created_at": r.created_at, "size_raw": r.manifest.size_raw if r.manifest else None,
            "size_stored": r.manifest.size_stored if r.manifest else None,
            "compression": r.manifest.compression if r.manifest else None, "protection": protection,
            "deploy": asdict(r.manifest.deploy) if r.manifest and r.manifest.deploy else None}


def _protected_cell(protection: Any) -> str:
    if protection is None:
        return "-"
    until = f"{protection.until:%Y-%m-%d %H:%M}" if protection.until else "until unkept"
    return f"{protection.reason} ({until})"


def _deploy_cell(origin: DeployOrigin | None) -> str:
    """``release a1b2c3d4e5f6 (replaces 0f1e2d3c4b5a)`` for a pre-deploy snapshot, ``-`` otherwise."""
    if origin is None:
        return "-"
    commit = origin.commit[:12] if origin.commit else "?"
    return f"{origin.kind} {commit} (replaces {origin.replaces[:12] if origin.replaces else 'nothing'})"


@backups.command("keep")
@click.argument("name")
@options.reason_option(default="kept by hand")
@click.option("--until", "until_text", metavar="DATE",
              help="Protect until then: 2026-12-31 or 2026-12-31T18:00 (UTC unless an offset is given).")
@options.for_option
@options.database_option
@options.directory_option
@output.json_option
@pass_context
def keep_command(ctx: Context, name: str, reason: str, until_text: str | None, for_text: str | None,
                 database: str | None, directory: str | None, as_json: bool) -> int:
    """Protect a backup from prune (here and at every destination), like restic's --keep-tag.

    Without --until or --for it stays protected until `railguard backups unkeep NAME`.
    NAME is a backup name from `railguard backups list`, or `latest`.
    """
    if until_text is not None and for_text is not None:
        raise click.UsageError("give --until or --for, not both")
    settings, app_name, app = ctx.app({"app.database": ("--db", database), "app.backup.directory": ("--dir", directory)})
    now = ctx.now()
    owner = Owner.of(settings, app_name, app)
    kept = _generation_named(app, owner, name) or resolve_backup(app.backup.directory, owner, name).name
    until = _until(until_text, for_text, now)
    protection = protect(app.backup.directory, kept, reason, until=until, now=now)
    if as_json:
        output.emit_json({"ok": True, "app": app_name, "name": kept, "protection": protection.as_dict()})
    else:
        click.echo(f"{kept}: {protection.describe()}")
    return ExitCode.OK


@backups.command("unkeep")
@click.argument("name")
@options.database_option
@options.directory_option
@output.json_option
@pass_context
def unkeep_command(ctx: Context, name: str, database: str | None, directory: str | None, as_json: bool) -> int:
    """Remove a backup's protection: the retention policy decides about it again."""
    settings, app_name, app = ctx.app({"app.database": ("--db", database), "app.backup.directory": ("--dir", directory)})
    owner = Owner.of(settings, app_name, app)
    generation = _generation_named(app, owner, name)
    if generation is not None:
        wanted, removed = generation, unprotect(app.backup.directory, generation)
    else:
        wanted, removed = unkeep(app.backup.directory, owner, name)
    if as_json:
        output.emit_json({"ok": True, "app": app_name, "name": wanted, "was_protected": removed})
    else:
        click.echo(f"{wanted}: protection removed" if removed else f"{wanted}: was not protected")
    return ExitCode.OK


def _generation_named(app: AppSettings, owner: Owner, name: str) -> str | None:
    """The page generation (docs/pages.md) ``name`` means, or None for a whole-file backup's name.

    A generation is protected by its name like a whole-file backup; ``latest`` means the newest
    generation when the app takes them.
    """
    if any(record.name == name for record in list_generations(app.backup.directory, owner)) or (
            name == "latest" and app.backup.kind == "pages"):
        return resolve_generation(app.backup.directory, owner, name).name
    return None


def _until(until_text: str | None, for_text: str | None, now: datetime) -> datetime | None:
    if for_text is not None:
        try:
            length = parse_duration(for_text)
        except ValueError as exc:
            raise UsageError(f"--for: {exc}", hint="Try: railguard backups keep latest --for 7d") from None
        return now + length
    if until_text is None:
        return None
    try:
        moment = datetime.fromisoformat(until_text)
    except ValueError:
        raise UsageError(f"--until: expected a date such as 2026-12-31 or 2026-12-31T18:00, got {until_text!r}",
                         hint="Try: railguard backups keep latest --until 2026-12-31") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    if moment <= now:
        raise UsageError(f"--until {until_text} is not in the future", hint="Give a later date, or use --for 7d")
    return moment


@backups.command("verify")
@click.argument("name", required=False)
@click.option("--all", "verify_all", is_flag=True, help="Verify every backup (finds bit rot in old ones).")
@options.database_option
@options.directory_option
@options.check_option
@options.dest_option()
@options.identity_option
@output.json_option
@pass_context
def verify_command(ctx: Context, name: str | None, verify_all: bool, database: str | None, directory: str | None,
                   check: str | None, dest: str | None, identity: Path | None, as_json: bool) -> int:
    """Re-hash a backup against its manifest, decompress it and run integrity_check.

    NAME is a backup name from `railguard backups list`, or `latest` (the default). A page
    generation is rebuilt from its store and checked (every pack, every page, integrity_check);
    a damaged pack fails every generation that needs it, each naming the pack. With --dest
    NAME, the copies at that destination instead (each is downloaded to be checked).
    """
    if name and verify_all:
        raise click.UsageError("give a NAME or --all, not both")
    settings, app_name, app = ctx.app({"app.database": ("--db", database), "app.backup.directory": ("--dir", directory),
                                       "app.backup.check": ("--check", check)})
    if dest is not None:
        return dest_cmd.verify_remote_copies(ctx, app_name, app, dest, name, verify_all, identity, as_json)
    if identity is not None:
        raise click.UsageError("--identity only applies with --dest (local backups are not encrypted)")
    owner = Owner.of(settings, app_name, app)
    generations = list_generations(app.backup.directory, owner)
    # A page generation (docs/pages.md) by its name, or `latest` when the app takes generations.
    wanted = name or "latest"
    of_generations = any(record.name == wanted for record in generations) or (
        wanted == "latest" and app.backup.kind == "pages")
    with output.progress_bar() as progress:
        if verify_all:
            outcomes = verify_backups(app.backup.directory, owner, None, every=True, mode=app.backup.check,
                                      progress=progress)
            outcomes += verify_generations(app.backup.directory, owner, None, every=True, mode=app.backup.check,
                                           progress=progress)
        elif of_generations:
            outcomes = verify_generations(app.backup.directory, owner, name, mode=app.backup.check,
                                          progress=progress)
        else:
            outcomes = verify_backups(app.backup.directory, owner, name, mode=app.backup.check, progress=progress)
    results = [outcome.as_dict() for outcome in outcomes]
    failed = [r for r in results if not r["ok"]]
    if as_json:
        output.emit_json({"ok": not failed, "app": app_name, "results": results})
    else:
        for r in results:
            if r["result"] == "gone":
                click.echo(f"gone   {r['name']}: removed by a prune while the others were verified")
                continue
            click.echo(f"{'ok    ' if r['ok'] else 'FAILED'} {r['name']}" + ("" if r["ok"] else f": {r['result']}"))
        if not results:
            click.echo(f"no backups in {app.backup.directory}")
    return ExitCode.VERIFY_FAILED if failed else ExitCode.OK
