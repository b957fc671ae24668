"""``railguard backup`` and ``railguard backups list|verify``."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from railguard.backup import list_backups, resolve_backup, verify_backup
from railguard.backup.catalog import Owner, bad_manifest_warnings
from railguard.backup.verify import BackupVanished
from railguard.cli import dest_cmd, output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.errors import ExitCode, RailguardError
from railguard.jobs import backup_job

pass_context = click.make_pass_decorator(Context)


@cli.command()
@click.option("--db", "database", metavar="PATH", help="Database to back up [apps.NAME.database].")
@click.option("--dir", "directory", metavar="DIR", help="Backup directory [backup.directory].")
@click.option("--method", type=click.Choice(["backup-api", "vacuum-into"]), help="How to copy [backup.method].")
@click.option("--compression", type=click.Choice(["zstd", "gzip", "none"]), help="[backup.compression]")
@click.option("--level", type=int, help="Compression level [backup.level].")
@click.option("--check", type=click.Choice(["integrity", "quick"]), help="Verification of the copy [backup.check].")
@click.option("--busy-timeout", metavar="DURATION", help="Retry a locked database this long [backup.busy_timeout].")
@click.option("--prune/--no-prune", default=None, help="Apply the retention policy afterwards [backup.prune].")
@output.json_option
@pass_context
def backup(ctx: Context, database: str | None, directory: str | None, method: str | None, compression: str | None,
           level: int | None, check: str | None, busy_timeout: str | None, prune: bool | None, as_json: bool) -> int:
    """Take a verified online backup of the app's database.

    Copies the live database without stopping the app, runs integrity_check on the copy,
    compresses it, and only then gives it its final name. One line goes to backup.log.
    """
    settings, name, app = ctx.app({
        "app.database": ("--db", database), "app.backup.directory": ("--dir", directory),
        "app.backup.method": ("--method", method), "app.backup.compression": ("--compression", compression),
        "app.backup.level": ("--level", level), "app.backup.check": ("--check", check),
        "app.backup.busy_timeout": ("--busy-timeout", busy_timeout), "app.backup.prune": ("--prune", prune),
    })
    with output.progress_bar(True) as progress:
        report = backup_job(settings, name, app, now=ctx.now(), progress=progress)
    result, manifest = report.backup, report.backup.manifest
    if as_json:
        output.emit_json({"ok": True, "app": name, "file": result.path, "warnings": report.warnings,
                          "manifest": asdict(manifest), "steps": report.steps})
    else:
        click.echo(f"backup {result.path} ({output.human_size(manifest.size_raw)} → "
                   f"{output.human_size(manifest.size_stored)}, {manifest.check}_check {manifest.check_result}, "
                   f"{manifest.durations['total']:.1f}s)")
        for message in report.warnings:
            output.warning(message)
    return report.exit_code


@cli.group()
def backups() -> None:
    """List and verify the backups of an app."""


@backups.command("list")
@click.option("--db", "database", metavar="PATH", help="Whose backups [apps.NAME.database].")
@click.option("--dir", "directory", metavar="DIR", help="Backup directory [backup.directory].")
@click.option("--dest", metavar="NAME", help="List the copies at this destination instead (docs/destinations.md).")
@output.json_option
@pass_context
def list_command(ctx: Context, database: str | None, directory: str | None, dest: str | None, as_json: bool) -> int:
    """Show every backup: name, time, size, ratio, verified, age."""
    settings, name, app = ctx.app({"app.database": ("--db", database), "app.backup.directory": ("--dir", directory)})
    if dest is not None:
        return dest_cmd.list_remote(ctx, name, app, dest, as_json)
    records = list_backups(app.backup.directory, Owner.of(settings, name, app))
    now = ctx.now()
    for message in bad_manifest_warnings(records):
        output.warning(message)
    if as_json:
        output.emit_json({"ok": True, "app": name, "directory": app.backup.directory, "backups": [
            {"name": r.name, "file": r.data_path.name if r.data_path else None, "status": r.status,
             "good": r.is_good, "created_at": r.created_at,
             "size_raw": r.manifest.size_raw if r.manifest else None,
             "size_stored": r.manifest.size_stored if r.manifest else None,
             "compression": r.manifest.compression if r.manifest else None} for r in records]})
        return ExitCode.OK
    if not records:
        click.echo(f"no backups in {app.backup.directory}")
        return ExitCode.OK
    rows = []
    for r in records:
        m = r.manifest
        rows.append([r.name, r.created_at.strftime("%Y-%m-%d %H:%M"),
                     output.human_size(m.size_stored) if m else "-", f"{m.ratio:.0%}" if m else "-",
                     "yes" if r.is_good else f"no ({r.status})", output.human_age(now - r.created_at)])
    output.table(f"backups in {app.backup.directory}", ["name", "time (UTC)", "size", "ratio", "verified", "age"], rows)
    return ExitCode.OK


@backups.command("verify")
@click.argument("name", required=False)
@click.option("--all", "verify_all", is_flag=True, help="Verify every backup (finds bit rot in old ones).")
@click.option("--db", "database", metavar="PATH", help="Whose backups [apps.NAME.database].")
@click.option("--dir", "directory", metavar="DIR", help="Backup directory [backup.directory].")
@click.option("--check", type=click.Choice(["integrity", "quick"]), help="[backup.check]")
@click.option("--dest", metavar="NAME", help="Verify the copies at this destination instead (downloads them).")
@click.option("--identity", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="age identity file to decrypt encrypted copies [destinations.NAME.age_identity_file].")
@output.json_option
@pass_context
def verify_command(ctx: Context, name: str | None, verify_all: bool, database: str | None, directory: str | None,
                   check: str | None, dest: str | None, identity: Path | None, as_json: bool) -> int:
    """Re-hash a backup against its manifest, decompress it and run integrity_check.

    NAME is a backup name from `railguard backups list`, or `latest` (the default).
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
    records = list_backups(app.backup.directory, owner) if verify_all else [
        resolve_backup(app.backup.directory, owner, name)]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="railguard-verify-") as scratch:
        for record in records:
            try:
                outcome = verify_backup(record, _scratch_dir(record.directory, scratch), mode=app.backup.check)
                results.append({"name": record.name, "ok": True, "result": "ok",
                                "seconds": round(outcome.seconds, 3)})
            except BackupVanished:
                if not verify_all:
                    raise
                # Listed, then removed by a prune before its turn: nothing left to verify, nothing wrong.
                results.append({"name": record.name, "ok": True, "result": "gone"})
            except RailguardError as exc:
                results.append({"name": record.name, "ok": False, "result": exc.message})
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


def _scratch_dir(backup_directory: Path, fallback: str) -> Path:
    """Decompress next to the backups (same disk, sized for them) when we may write there."""
    return backup_directory if os.access(backup_directory, os.W_OK) else Path(fallback)
