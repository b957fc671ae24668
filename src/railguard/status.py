"""``railguard status``: one screen that says whether the safety net is intact.

Each row is a fact read from disk (the backup directory, its ``backup.log`` and
``drill.log``, the deploy history, the last smoke result, the monitor's store), with an age
and whether it is *flagged*. Flags, following the Prometheus advice in
shared/reference/monitoring.md: the newest good backup older than period + grace
(``[status] backup_max_age``, 26 h); the newest backup not verified; the last backup attempt
failed; a destination whose last copy failed or is older than ``backup_max_age``; the last
drill failed or passed longer ago than ``drill_max_age`` (35 d); the last deploy or smoke
check failed; a monitored target DOWN. Anything flagged makes the command
exit CHECK_FAILED, so ``railguard status`` can itself be a check.

A copy that a verification found damaged at a destination (its ``NAME.damaged.json`` mark) is
a *warning* naming the destination, the backup and what to do. The marks live at the
destination, not in a log here (a new host must see them too), so this is the one fact status
reads off the host: one listing of each destination, asked through
:meth:`railguard.destinations.Destination.damaged_backups`, the owner of the mark. A
destination that cannot be read then is a warning too: status could not look.

A drill or deploy that never happened is a *warning* (exit WARNING, never "all good") when
something was promised there: ``[status] require_drill`` / ``require_deploy``, by default on
when the app has a drill (``[apps.NAME.drill]`` with a command or image) or deploys
(``[apps.NAME.deploy] caprover_url``). Otherwise a row whose source does not exist yet (no
drill, no deploy, no monitor) is shown as ``none``: nothing has been promised there yet.

This module reads no log file itself: each log is read by the module that writes it
(``backup.log`` by :mod:`railguard.backup.log`, ``drill.log`` by :mod:`railguard.drill.log`,
``destinations.log`` by :mod:`railguard.destinations.history`, the deploy history by
:mod:`railguard.deploy.state`, the smoke record by :mod:`railguard.smoke.record`, the monitor's
store by :mod:`railguard.monitor.report`), so a log's name and vocabulary live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from railguard.backup.catalog import BackupRecord, Owner, list_backups
from railguard.backup.naming import stem_for
from railguard.backup.log import last_backup_attempt
from railguard.config import AppSettings, Settings
from railguard.deploy.state import last_deploy
from railguard.destinations import RemoteBackup, open_destination
from railguard.pages import stored_generations
from railguard.destinations.history import last_copies
from railguard.drill.log import drill_passed, read_drill_log
from railguard.errors import RailguardError
from railguard.logfmt import line_time
from railguard.monitor.report import TargetStatus, monitor_status
from railguard.smoke.record import read_smoke_results
from railguard.values import describe_duration

if TYPE_CHECKING:
    from railguard.pages.catalog import GenerationRecord


@dataclass(frozen=True)
class StatusRow:
    app: str | None
    name: str  # backup | verified | last_attempt | drill | deploy | smoke | monitor:<target>
    state: str  # ok | flagged | warning | none
    detail: str
    at: datetime | None = None
    #: On a ``destination:NAME:BACKUP`` row: the copy marked damaged there, for scripts.
    damaged_copy: dict[str, Any] | None = None

    @property
    def flagged(self) -> bool:
        return self.state == "flagged"

    def as_dict(self, now: datetime) -> dict[str, Any]:
        row: dict[str, Any] = {"app": self.app, "name": self.name, "state": self.state, "flagged": self.flagged,
               "detail": self.detail, "at": self.at,
               "age_seconds": int((now - self.at).total_seconds()) if self.at else None}
        if self.damaged_copy is not None:
            row["damaged_copy"] = self.damaged_copy
        return row


@dataclass
class StatusReport:
    now: datetime
    rows: list[StatusRow] = field(default_factory=list)

    @property
    def flagged(self) -> list[StatusRow]:
        return [row for row in self.rows if row.flagged]

    @property
    def warnings(self) -> list[StatusRow]:
        return [row for row in self.rows if row.state == "warning"]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.flagged and not self.warnings, "now": self.now, "flagged": len(self.flagged),
                "warnings": len(self.warnings), "rows": [row.as_dict(self.now) for row in self.rows]}


def collect_status(settings: Settings, now: datetime, *, monitor: list[TargetStatus] | None = None) -> StatusReport:
    """Every row. ``monitor``: the monitor's targets (:func:`railguard.monitor.report.monitor_status`,
    ``[]`` when it never ran) when the caller has read them already, as the status page does for
    its rows and its uptime charts alike."""
    report = StatusReport(now)
    for name, app in settings.apps.items():
        report.rows += app_rows(name, app, settings, now)
    report.rows += monitor_rows(settings, now, monitor)
    return report


def app_rows(name: str, app: AppSettings, settings: Settings, now: datetime,
             local: list[BackupRecord] | None = None,
             generations: list[GenerationRecord] | None = None) -> list[StatusRow]:
    """Every row of one app: backups, destinations, drill, deploy. ``local`` and ``generations``:
    the app's :func:`local_backups` and :func:`local_generations` when the caller has listed
    them (they are read once, either way)."""
    if local is None:
        local = local_backups(name, app, settings)
    return (backup_rows(name, app, settings, now, local, generations)
            + destination_rows(name, app, settings, now, local)
            + drill_rows(name, app, settings, now) + deploy_rows(name, app, settings))


def local_backups(name: str, app: AppSettings, settings: Settings) -> list[BackupRecord]:
    """The app's backups in its directory (none when the directory does not exist yet)."""
    directory = app.backup.directory
    return list_backups(directory, Owner.of(settings, name, app)) if directory.is_dir() else []


def local_generations(name: str, app: AppSettings, settings: Settings) -> list[GenerationRecord]:
    """The app's page generations (docs/pages.md), oldest first; the page store's modules
    imported only when it has a store: they bring the validator types of its manifests
    (pydantic's), which a whole-file app's ``status`` would pay for at every start (docs/cli.md,
    start-up)."""
    return stored_generations(app.backup.directory, Owner.of(settings, name, app))


def backup_rows(name: str, app: AppSettings, settings: Settings, now: datetime,
                records: list[BackupRecord] | None = None,
                generations: list[GenerationRecord] | None = None) -> list[StatusRow]:
    """The newest backup, the newest verification and any unusable backup; ``records`` and
    ``generations``: the app's :func:`local_backups` and :func:`local_generations`, when the
    caller has listed them already."""
    directory = app.backup.directory
    if records is None:
        records = local_backups(name, app, settings)
    if generations is None:
        generations = local_generations(name, app, settings)
    # Page generations (docs/pages.md) are backups too; the newest verified one is the recovery point.
    every: list[BackupRecord | GenerationRecord] = sorted([*records, *generations],
                                                          key=lambda record: (record.created_at, record.id))
    good = [record for record in every if record.is_good]
    rows: list[StatusRow] = []
    limit = settings.status.backup_max_age
    if not good:
        rows.append(StatusRow(name, "backup", "flagged", f"no verified backup in {directory}",))
    else:
        newest = good[-1]
        age = now - newest.created_at
        state = "flagged" if age > limit else "ok"
        older = f" (older than {describe_duration(limit)})" if state == "flagged" else ""
        kind = "" if isinstance(newest, BackupRecord) else " (generation: the recovery point)"
        rows.append(StatusRow(name, "backup", state, f"{newest.name}, {describe_duration(age)} old{kind}{older}",
                              newest.created_at))
    if every:
        newest_any = every[-1]
        if newest_any.is_good:
            manifest = newest_any.manifest
            assert manifest is not None
            rows.append(StatusRow(name, "verified", "ok", f"{newest_any.name}: {manifest.check}_check "
                                  f"{manifest.check_result}", newest_any.created_at))
        else:
            rows.append(StatusRow(name, "verified", "flagged", f"{newest_any.name}: {newest_any.reason}",
                                  newest_any.created_at))
    for record in records:
        if record.has_bad_manifest and record is not records[-1]:  # the newest has its own row above
            rows.append(StatusRow(name, f"backup:{record.name}", "flagged",
                                  f"{record.reason}: not usable, the other backups are; inspect it"))
    attempt = last_backup_attempt(directory)
    if attempt is not None and attempt.get("result") == "failed":
        rows.append(StatusRow(name, "last_attempt", "flagged",
                              f"backup failed: {attempt.get('error', 'see backup.log')}", line_time(attempt)))
    return rows


def drill_rows(name: str, app: AppSettings, settings: Settings, now: datetime) -> list[StatusRow]:
    lines = read_drill_log(app.backup.directory)
    if not lines:
        required = settings.status.require_drill
        if required or (required is None and bool(app.drill.command or app.drill.image)):
            return [StatusRow(name, "drill", "warning", "no restore drill has ever run; run one: railguard drill")]
        return [StatusRow(name, "drill", "none", "no restore drill recorded yet")]
    last = lines[-1]
    passed = [line for line in lines if drill_passed(line) and line_time(line)]
    if not drill_passed(last):
        return [StatusRow(name, "drill", "flagged", f"last drill {last.get('result', '?')}: "
                          f"{last.get('error') or last.get('reason') or 'see drill.log'}", line_time(last))]
    when = line_time(passed[-1]) if passed else None
    if when is None:
        return [StatusRow(name, "drill", "flagged", "drill.log has no time on its last passing line")]
    age = now - when
    limit = settings.status.drill_max_age
    if age > limit:
        return [StatusRow(name, "drill", "flagged",
                          f"last passing drill {describe_duration(age)} ago (more than {describe_duration(limit)})",
                          when)]
    return [StatusRow(name, "drill", "ok", f"passed {describe_duration(age)} ago", when)]


def deploy_rows(name: str, app: AppSettings, settings: Settings) -> list[StatusRow]:
    rows: list[StatusRow] = []
    deploy = last_deploy(settings.state_dir, app.deploy.state_file, name)
    required = settings.status.require_deploy
    if deploy is None and (required or (required is None and app.deploy.caprover_url is not None)):
        rows.append(StatusRow(name, "deploy", "warning", "no deploy has ever been recorded"))
    elif deploy is None:
        rows.append(StatusRow(name, "deploy", "none", "no deploy recorded"))
    else:
        what = f"{deploy.kind} {deploy.tag or (deploy.git_hash or '')[:12] or deploy.ref or ''}".strip()
        state = "flagged" if deploy.result == "failed" else "ok"
        rows.append(StatusRow(name, "deploy", state, f"{what}: {deploy.result}"
                              + (f" ({deploy.detail})" if deploy.detail and state == "flagged" else ""),
                              deploy.started_at))
    smoke = read_smoke_results(settings.state_dir).get(name)
    if smoke:
        at = datetime.fromisoformat(smoke["at"]) if smoke.get("at") else None
        rows.append(StatusRow(name, "smoke", "ok" if smoke.get("ok") else "flagged", str(smoke.get("summary", "")), at))
    return rows


def monitor_rows(settings: Settings, now: datetime, targets: list[TargetStatus] | None = None) -> list[StatusRow]:
    if targets is None:
        targets = monitor_status(settings, now) or []
    rows = []
    for target in targets:
        s = target.state
        if s.status == "down":
            rows.append(StatusRow(None, f"monitor:{target.name}", "flagged",
                                  f"DOWN since {_clock(s.down_since)}: {s.last_failure_reason}", s.down_since))
        else:
            uptime = target.uptime.get("24h")
            rows.append(StatusRow(None, f"monitor:{target.name}", "ok" if s.status == "up" else "none",
                                  f"{s.status.upper()}" + (f", {uptime:.2%} over 24h" if uptime is not None else ""),
                                  s.last_check_at))
    return rows


def destination_rows(name: str, app: AppSettings, settings: Settings, now: datetime,
                     local: list[BackupRecord] | None = None) -> list[StatusRow]:
    """One row per configured destination, from ``destinations.log`` beside the backups, then
    one per copy marked damaged there; ``local``: as :func:`backup_rows` takes it."""
    configured = app.destinations
    if not configured:
        return []
    copies = last_copies(app.backup.directory, configured)
    if local is None:
        local = local_backups(name, app, settings)
    replaceable = {record.name for record in local if record.is_good}
    rows = []
    limit = settings.status.backup_max_age
    for destination in sorted(configured):
        last, success = copies[destination].last, copies[destination].success_at
        label = f"destination:{destination}"
        if last is None:
            rows.append(StatusRow(name, label, "flagged", "no copy made yet"))
        elif last.get("result") != "ok":
            rows.append(StatusRow(name, label, "flagged", f"last copy failed: {last.get('reason') or '?'}",
                                  line_time(last)))
        elif success is not None and now - success > limit:
            rows.append(StatusRow(name, label, "flagged", f"last copy {describe_duration(now - success)} ago "
                                  f"(more than {describe_duration(limit)})", success))
        else:
            rows.append(StatusRow(name, label, "ok", f"{last.get('backup', '?')} copied", success))
        rows += damaged_copy_rows(name, app, destination, replaceable)
    return rows


def damaged_copy_rows(name: str, app: AppSettings, destination: str, replaceable: set[str]) -> list[StatusRow]:
    """A warning per copy marked damaged at ``destination``; ``replaceable``: the good local
    backups, from which ``railguard replicate`` replaces a damaged copy of the same name."""
    try:
        damaged = open_destination(app, destination).damaged_backups(stem_for(app.database))
    except RailguardError as exc:
        return [StatusRow(name, f"destination:{destination}:unread", "warning",
                          f"cannot look for copies marked damaged there: {exc.message}")]
    return [_damaged_row(name, destination, backup, backup.name in replaceable) for backup in damaged]


def _damaged_row(name: str, destination: str, backup: RemoteBackup, replaceable: bool) -> StatusRow:
    if replaceable:
        todo = f"railguard replicate --dest {destination} replaces it from the local backup"
    else:
        todo = (f"the local backup is gone, so replicate cannot replace it; restore from another copy "
                f"(railguard backups list --dest {destination})")
    return StatusRow(name, f"destination:{destination}:{backup.name}", "warning",
                     f"copy of {backup.name} at {destination} is marked damaged ({backup.damaged}); {todo}",
                     backup.damaged_at,
                     {"destination": destination, "backup": backup.name, "reason": backup.damaged,
                      "found_at": backup.damaged_at, "replaceable": replaceable})




def _clock(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"
