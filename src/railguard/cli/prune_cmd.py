"""``railguard prune``: apply the retention policy (restic ``forget`` rules) to the backups."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from railguard.backup.catalog import Owner, list_backups
from railguard.cli import dest_cmd, options, output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.destinations import prune_destinations
from railguard.errors import ExitCode, UsageError
from railguard.retention import Plan, PruneResult, Within, prune_backups, prune_generations
from railguard.retention.policy import policy_in_effect

pass_context = click.make_pass_decorator(Context)
COUNT = click.IntRange(min=0)


@cli.command()
@options.dry_run_option
@click.option("--keep-last", type=COUNT, metavar="N", help="Keep the N newest backups.")
@click.option("--keep-hourly", type=COUNT, metavar="N", help="Keep the newest backup of each of the last N hours.")
@click.option("--keep-daily", type=COUNT, metavar="N", help="... of each of the last N calendar days.")
@click.option("--keep-weekly", type=COUNT, metavar="N", help="... of each of the last N ISO weeks (Monday-Sunday).")
@click.option("--keep-monthly", type=COUNT, metavar="N", help="... of each of the last N months.")
@click.option("--keep-yearly", type=COUNT, metavar="N", help="... of each of the last N years.")
@click.option("--keep-within", metavar="DURATION",
              help="Keep every backup this recent, counted from the newest one: 2d, 36h, 1y6m (m = months).")
@options.directory_option
@output.json_option
@pass_context
def prune(ctx: Context, dry_run: bool, keep_last: int | None, keep_hourly: int | None, keep_daily: int | None,
          keep_weekly: int | None, keep_monthly: int | None, keep_yearly: int | None, keep_within: str | None,
          directory: str | None, as_json: bool) -> int:
    """Remove the backups that the retention policy does not keep.

    Same rules as `restic forget`: each rule keeps the newest backup of each of its last N
    periods (in the configured time zone), and a backup is kept if any rule keeps it. Any
    --keep-* flag replaces the whole policy of railguard.toml (default: 7 daily, 4 weekly), as
    on restic's command line. The newest good backup is never removed; files that are not
    backups are never touched. A protected backup (`railguard backups keep`, or one taken
    by hand within [backup.keep_manual]) is kept and takes no part in the rules, here and at
    every destination. Each removal is logged in backup.log. --dry-run prints the plan with
    the reason for every decision and removes nothing. With [backup] kind = "pages" the
    generations are pruned, then the packs no kept generation needs. See docs/retention.md.
    """
    settings, name, app = ctx.app({"app.backup.directory": ("--dir", directory)})
    flags = {"last": keep_last, "hourly": keep_hourly, "daily": keep_daily, "weekly": keep_weekly,
             "monthly": keep_monthly, "yearly": keep_yearly}
    policy, origin = policy_in_effect(flags, _within(keep_within), app.retention)
    # An app that takes page generations (docs/pages.md) prunes those, GC of their packs included,
    # then the whole-file backups beside them (pre-deploy snapshots, those from before kind =
    # "pages") by the same policy, or they would pile up once their protection ends.
    owner, pages = Owner.of(settings, name, app), app.backup.kind == "pages"
    result = (prune_generations if pages else prune_backups)(app.backup.directory, owner, policy, now=ctx.now(),
                                                              tz=settings.timezone, dry_run=dry_run)
    whole_file = (prune_backups(app.backup.directory, owner, policy, now=ctx.now(), tz=settings.timezone,
                                dry_run=dry_run) if pages and list_backups(app.backup.directory, owner) else None)
    # Then each destination: its own policy, else the one in effect here (docs/destinations.md).
    remote = prune_destinations(settings, app, now=ctx.now(), dry_run=dry_run, fallback=policy)
    if as_json:
        output.emit_json({**_document(name, str(app.backup.directory), result, origin),
                          **({"whole_file": _document(name, str(app.backup.directory), whole_file, origin)}
                             if whole_file else {}),
                          "destinations": [item.summary() for item in remote]})
    else:
        _render(result, _ORIGINS[origin].format(app=name))
        if whole_file is not None:
            click.echo("whole-file backups beside the generations (pre-deploy snapshots, or from before "
                       "kind = \"pages\"):")
            _render(whole_file, _ORIGINS[origin].format(app=name))
        dest_cmd.render_prunes(remote)
    leave = [*result.plan.leave, *(whole_file.plan.leave if whole_file else [])]
    for decision in leave:  # on stderr, so also beside --json
        detail = f" ({decision.backup.detail})" if decision.backup.detail else ""
        output.warning(f"{decision.name} is {decision.backup.status}: left in place{detail}; inspect it, then "
                       "remove its files by hand if it is of no use")
    return ExitCode.WARNING if leave or any(item.error for item in remote) else ExitCode.OK


def _within(text: str | None) -> Within | None:
    if text is None:
        return None
    try:
        return Within.parse(text)
    except ValueError as exc:
        raise UsageError(f"--keep-within: {exc}", hint="Try: railguard prune --keep-within 2d") from None


#: Where the policy in effect came from, as the first line of the plan says it.
_ORIGINS = {
    "flags": "from the --keep-* flags",
    "configuration": "from [apps.{app}.retention]",
    "default": "the default: [apps.{app}.retention] sets no rule",
}


def _render(result: PruneResult, origin: str) -> None:
    plan = result.plan
    click.echo(f"policy: {plan.policy} (periods in {plan.tz}), {origin}")
    rows = [(d.action, d.name, plan_time(plan, d.backup.created_at), ", ".join(d.reasons)) for d in plan.decisions]
    width = max((len(row[1]) for row in rows), default=0)
    for action, name, when, reasons in rows:
        click.echo(f"{action:<6}  {name:<{width}}  {when}  {reasons}")
    total = len(plan.decisions)
    protected = f" ({len(plan.protected)} protected)" if plan.protected else ""
    if result.dry_run:
        click.echo(f"dry run: would remove {len(plan.remove)} of {total} backups, keep {len(plan.keep)}{protected}; "
                   "nothing was removed")
    else:
        click.echo(f"removed {len(result.removed)} of {total} backups, kept {len(plan.keep)}{protected}")


def plan_time(plan: Plan, moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(plan.tz)).strftime("%Y-%m-%d %H:%M")


def _document(app: str, directory: str, result: PruneResult, origin: str) -> dict[str, Any]:
    plan = result.plan
    return {
        "ok": True, "app": app, "directory": directory, "policy": str(plan.policy),
        "policy_from": origin, "rules": plan.policy.as_dict(), "time_zone": plan.tz,
        "dry_run": result.dry_run, "removed": result.removed,
        "protected": [{"name": d.name, **d.protection.as_dict()} for d in plan.protected if d.protection],
        "decisions": [{"name": d.name, "action": d.action, "reasons": list(d.reasons),
                       "created_at": d.backup.created_at, "status": d.backup.status,
                       "detail": d.backup.detail,
                       "protection": d.protection.as_dict() if d.protection else None} for d in plan.decisions],
    }
