"""``railguard replicate``: copy to the destinations what they are missing, verified there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from railguard.backup.naming import stem_for
from railguard.cli import options, output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.config import AppSettings
from railguard.destinations import DestinationPrune, open_destination, verify_remote
from railguard.destinations.configured import scratch_beside
from railguard.destinations.generations import GenerationCopies, RemoteGeneration
from railguard.destinations.remote import choose_remote, verify_remote_generations
from railguard.destinations.replicate import exit_code_for
from railguard.errors import ExitCode, RailguardError, UsageError
from railguard.jobs import replicate_job

pass_context = click.make_pass_decorator(Context)


@cli.command()
@options.dest_option("only")
@click.option("--all", "fill_gaps", is_flag=True,
              help="Also copy older backups a destination lacks (default: those newer than its newest copy).")
@click.option("--prune", is_flag=True, help="Then apply each destination's retention policy there.")
@output.json_option
@pass_context
def replicate(ctx: Context, only: str | None, fill_gaps: bool, prune: bool, as_json: bool) -> int:
    """Copy backups to the off-host destinations and verify each copy there.

    Catch-up after an outage: every good local backup newer than a destination's newest good
    copy is uploaded, read back and checked (size and sha256) before its manifest is written.
    A copy there under the same name that is marked damaged, fails its checks or holds other
    bytes (its manifest's sha256 differs) is replaced, whatever its age; it stays until the
    new copy has been read back. With --dest NAME, only that destination (default: every one
    of the app).
    Exit code 0 when every destination is complete, 4 when a copy failed verification, 2 when
    a destination could not be used, 5 while another replicate of this app runs.
    """
    settings, name, app = ctx.app()
    if not app.destinations:
        raise UsageError(f"app {name} has no destinations",
                         hint=f"Add one under [apps.{name}.destinations.NAME] in railguard.toml (docs/destinations.md)")
    if only is not None and only not in app.destinations:
        open_destination(app, only)  # raises: an unknown name fails before any heartbeat is sent
    with output.progress_bar() as progress:
        runs, watch = replicate_job(settings, name, app, now=ctx.now(), only=only, fill_gaps=fill_gaps, prune=prune,
                                    progress=progress)
    code = exit_code_for(runs)
    if as_json:
        output.emit_json({"ok": code == ExitCode.OK, "app": name, "destinations": [run.summary() for run in runs],
                          "exit_code": int(code), **watch})
        return code
    for run in runs:
        state = "ok    " if run.ok else "FAILED"
        pruned = f", pruned {len(run.pruned)}" if run.pruned else ""
        replaced = f" (replacing {len(run.replaced)} damaged or different)" if run.replaced else ""
        click.echo(f"{state} {run.name} ({run.url}): copied {len(run.copied)}{replaced}, already there "
                   f"{run.present}{pruned}, {output.human_size(run.bytes)} in {run.seconds:.1f}s")
        for problem in run.problems():
            output.warning(problem)
    return code


def list_remote(ctx: Context, app_name: str, app: AppSettings, dest: str, as_json: bool) -> int:
    """``railguard backups list --dest NAME``."""
    destination = open_destination(app, dest)
    stem = stem_for(app.database)
    backups = destination.list_backups(stem)
    generations = GenerationCopies(destination, stem).held()
    now = ctx.now()
    listed: list[dict[str, Any]] = [
        {"name": b.name, "kind": "file", "file": b.data_key, "status": b.status, "good": b.is_good,
         "damaged": b.damaged, "created_at": b.created_at, "size": b.size, "encrypted": b.encryption is not None,
         "size_raw": b.manifest.size_raw if b.manifest else None} for b in backups]
    # A generation's size is what restoring it downloads: every object it needs.
    listed += [{"name": g.name, "kind": "pages", "file": g.manifest_key, "status": g.status, "good": g.is_good,
                "damaged": None, "created_at": g.created_at, "size": g.stored_bytes, "encrypted": g.encrypted,
                "size_raw": g.manifest.size_raw if g.manifest else None, "objects": len(g.objects),
                "missing": g.missing} for g in generations]
    listed.sort(key=lambda item: (item["created_at"], item["name"]))
    if as_json:
        output.emit_json({"ok": True, "app": app_name, "destination": dest, "url": destination.url,
                          "backups": listed})
        return ExitCode.OK
    if not listed:
        click.echo(f"no backups at {dest} ({destination.url})")
        return ExitCode.OK
    # The same words as the local list (backups list): "verified" is the one word for "this copy
    # can be trusted", here and there.
    rows = [[b["name"], b["created_at"].strftime("%Y-%m-%d %H:%M"),
             output.human_size(b["size"]) if b["size"] else "-", "generation" if b["kind"] == "pages" else "file",
             "age" if b["encrypted"] else "-", "yes" if b["good"] else f"no ({b['status']})",
             output.human_age(now - b["created_at"])] for b in listed]
    output.table(f"backups at {dest} ({destination.url})",
                 ["name", "time (UTC)", "size", "kind", "encrypted", "verified", "age"], rows)
    return ExitCode.OK


def verify_remote_copies(ctx: Context, app_name: str, app: AppSettings, dest: str, name: str | None,
                         verify_all: bool, identity: Path | None, as_json: bool) -> int:
    """``railguard backups verify --dest NAME``: download, decrypt (with --identity), check.

    One copy that fails never stops the others (``--all``). Exit 4 when a copy failed
    verification (it is then marked damaged there), else the exit code of the first other
    failure (2: unreachable, or no room on this host to fetch the copy).
    """
    destination = open_destination(app, dest)
    stem = stem_for(app.database)
    if verify_all:
        selected: list[Any] = [*destination.list_backups(stem), *GenerationCopies(destination, stem).held()]
    else:
        selected = [choose_remote(destination, stem, name or "latest")]
    generations = [copy for copy in selected if isinstance(copy, RemoteGeneration)]
    results: list[dict[str, Any]] = []
    codes: list[ExitCode] = []
    with output.progress_bar() as progress:
        if generations:
            for result in verify_remote_generations(destination, stem, generations, mode=app.backup.check,
                                                    identity_file=identity,
                                                    scratch=scratch_beside(app.backup.directory), progress=progress):
                if not result["ok"]:
                    codes.append(ExitCode(result.pop("exit_code", ExitCode.VERIFY_FAILED)))
                results.append(result)
        for backup in (copy for copy in selected if not isinstance(copy, RemoteGeneration)):
            try:
                results.append(verify_remote(destination, backup, now=ctx.now(), mode=app.backup.check,
                                             identity_file=identity, progress=progress))
            except RailguardError as exc:
                codes.append(exc.exit_code)
                results.append({"name": backup.name, "ok": False, "result": exc.message, "hint": exc.hint,
                                "damaged": backup.damaged is not None})
    code = ExitCode.VERIFY_FAILED if ExitCode.VERIFY_FAILED in codes else (codes[0] if codes else ExitCode.OK)
    if as_json:
        output.emit_json({"ok": not codes, "app": app_name, "destination": dest, "results": results,
                          "exit_code": int(code)})
    else:
        for r in results:
            detail = f" ({r['note']})" if r.get("note") else ""
            click.echo(f"{'ok    ' if r['ok'] else 'FAILED'} {r['name']}"
                       + (detail if r["ok"] else f": {r['result']}"))
        if not results:
            click.echo(f"no backups at {dest} ({destination.url})")
        for hint in dict.fromkeys(r["hint"] for r in results if r.get("hint")):
            click.echo(f"hint: {hint}", err=True)
    return code


def render_prunes(results: list[DestinationPrune]) -> None:
    """The destinations' part of ``railguard prune``."""
    for item in results:
        if item.protected:
            click.echo(f"destination {item.name}: protected here, kept there: {', '.join(item.protected)}")
        if item.error is not None:
            output.warning(f"destination {item.name}: not pruned: {item.error}")
        elif item.dry_run:
            click.echo(f"destination {item.name} ({item.policy}): would remove {len(item.would_remove)}, "
                       f"keep {len(item.kept)}" + (f": {', '.join(item.would_remove)}" if item.would_remove else ""))
        else:
            click.echo(f"destination {item.name} ({item.policy}): removed {len(item.removed)}, keep {len(item.kept)}"
                       + (f": {', '.join(item.removed)}" if item.removed else ""))
