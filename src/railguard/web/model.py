"""What the status page shows, as plain values: the overview, one app, the public page.

The order of work, and why:

1. **The state** of each app and of the whole site comes from :func:`railguard.status.collect_status`,
   the rows ``railguard status --json`` prints: the page can never say "fine" where the command
   says "flagged", because both read the same rows (the worst row of an app is its state).
2. **The history** is read from the modules that write it, as ``status`` does: backups from the
   catalog and page generations from the page store's (each with the retention rule that keeps
   it and its protection, as the app's prune would decide: a ``kind = "pages"`` app prunes its
   generations, any other its whole-file backups), copies from
   ``destinations.log``, drills from ``drill.log``, deploys from the deploy history (each with
   the gate run that made it, from the gate's queue, read only), checks and incidents from the
   monitor's store, jobs from the daemon's run log, heartbeats from ``heartbeats.json``. Nothing
   here parses a log or a table itself.
3. **What a stranger may see** is decided here, not in a template: :func:`build_public` keeps
   only each target's name, state, uptime and outage times (no URL, no failure reason, no commit
   or log), and every text that came from a log passes through :func:`railguard.secrets.redact`.
   Drill output, test logs, a gate run's commit message and summary, and ping URLs are never
   read into a view at all (a heartbeat is named by the variable that holds its URL).

The **recovery point** (the age of the newest verified backup of either kind: for a ``kind =
"pages"`` app, of its newest verified generation) is the ``backup`` status row's time and state,
so it turns FAILING exactly where ``railguard status`` flags the row (older than ``[status]
backup_max_age``, or none at all). Listing generations reads their manifests, never a pack.

Every function takes the clock (``now``) as a parameter; nothing here reads the wall clock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from railguard.backup.catalog import BackupRecord
from railguard.backup.protection import read_protections
from railguard.config import AppSettings, Settings
from railguard.daemon.jobs import PlannedRun, planned_runs
from railguard.deploy.state import DeployState, state_path
from railguard.destinations.history import read_copy_log
from railguard.drill.log import drill_passed, read_drill_log
from railguard.errors import NotFound
from railguard.gate.queue import run_url, runs_by_deploy
from railguard.logfmt import line_time
from railguard.monitor.maintenance import window_start
from railguard.monitor.report import TargetStatus, monitor_status
from railguard.monitor.store import FILE_NAME as MONITOR_FILE
from railguard.monitor.store import CheckPoint, Incident, MonitorStore
from railguard.notify.heartbeat import STATE_FILE as HEARTBEAT_FILE
from railguard.notify.heartbeat import HeartbeatRecord, configured_heartbeats, read_ping_state
from railguard.retention.policy import Plan, Policy, apply_policy
from railguard.secrets import redact
from railguard.status import StatusRow, app_rows, collect_status, local_backups, local_generations

if TYPE_CHECKING:
    from railguard.pages.catalog import GenerationRecord

#: How far back the backup timeline, the incidents and the drill and deploy lists go.
HISTORY = timedelta(days=30)
#: The response-time chart: raw checks over the last day.
CHART_SPAN = timedelta(hours=24)
#: At most this many points in a chart: more checks are averaged into equal buckets.
MAX_POINTS = 288
#: Rows in the drill and deploy tables.
MAX_ROWS = 20

#: Worst first: the state of a group is the first of these that any of its rows has.
STATES = ("flagged", "warning", "ok", "none")


class AppNotFound(NotFound):
    pass


@dataclass(frozen=True)
class BackupMark:
    """One backup in the backups panel: a whole-file backup or a page generation."""

    name: str
    at: datetime
    #: Usable and verified (the catalog's ``is_good``).
    good: bool
    #: Bytes on disk (compressed), 0 when unknown; for a generation, the new pages it stored.
    stored_bytes: int
    #: "ok", or why the backup is not usable.
    status: str
    #: keep / remove / leave, by the retention policy in force; None without a policy.
    retention: str | None = None
    #: The rules that keep it ("daily #1", "weekly #2"), or why it goes.
    reasons: tuple[str, ...] = ()
    protection: str | None = None
    #: "file" (a whole-file backup) or "generation" (docs/pages.md).
    kind: str = "file"
    #: A generation's page count (the database's size in pages); None for a whole-file backup.
    pages: int | None = None


@dataclass(frozen=True)
class RecoveryPoint:
    """What a restore now would lose at most: the age of the newest verified backup of either
    kind, with the ``backup`` status row's state (flagged past ``[status] backup_max_age``)."""

    at: datetime | None
    age: timedelta | None
    #: ok | flagged: the ``backup`` row's.
    state: str
    #: The app's ``[apps.NAME.backup] kind``: "pages" names it the recovery point of its generations.
    kind: str


@dataclass(frozen=True)
class DestinationView:
    name: str
    state: str
    detail: str
    #: Distinct backups copied there successfully (from ``destinations.log``).
    copies: int
    last_copy_at: datetime | None


@dataclass(frozen=True)
class DrillEntry:
    at: datetime
    passed: bool
    result: str
    backup: str
    seconds: float | None
    #: The step that failed and why (never the app's output).
    error: str


@dataclass(frozen=True)
class DeployEntry:
    started_at: datetime
    finished_at: datetime | None
    kind: str
    commit: str
    result: str
    detail: str
    #: The gate run that tested and made this deploy (its id and status), None for a deploy by hand.
    gate_run: int | None = None
    gate_status: str | None = None
    #: That run's page on the gate, when ``[gate] public_url`` says where the gate is.
    gate_url: str | None = None


@dataclass(frozen=True)
class HeartbeatView:
    """One heartbeat of an app: the job it pings around and how its last pings went."""

    app: str
    #: backup | drill | replicate
    job: str
    #: The variable that holds the ping URL (``$VAR``): the URL is a secret, never in a view.
    target: str
    #: The daemon's job it belongs to (``backup:tasks``), None when the daemon runs no such job
    #: (``railguard replicate`` by hand or from cron).
    daemon_job: str | None
    last_ping_at: datetime | None
    #: ok | failed; None when it never pinged.
    result: str | None
    pings: int
    failures: int
    #: Why the last failed ping failed, and which ping it was (``HTTP 404 (ping 0)``: the exit
    #: status ping); "" when none ever failed.
    last_failure: str
    last_failure_at: datetime | None


@dataclass(frozen=True)
class TargetView:
    name: str
    status: str  # up | down | unknown
    #: "24h" / "7d" / "30d" -> fraction of successful checks, None without checks.
    uptime: dict[str, float | None]
    #: Response times over :data:`CHART_SPAN`, oldest first (at most :data:`MAX_POINTS`).
    points: list[CheckPoint]
    #: Outages over :data:`HISTORY`, newest first.
    incidents: list[Incident]
    down_since: datetime | None = None
    #: Left out of the public view.
    url: str | None = None
    last_failure_reason: str | None = None


@dataclass(frozen=True)
class MaintenanceView:
    """A ``[[monitor.maintenance]]`` window: no DOWN alert while it is on."""

    cron: str
    duration: timedelta
    #: When the window in force started; None when it is not on now.
    active_since: datetime | None


@dataclass(frozen=True)
class AppSummary:
    """What the overview shows of an app, and the head of its own page."""

    name: str
    state: str
    newest_backup_at: datetime | None
    rows: list[StatusRow]
    recovery_point: RecoveryPoint


@dataclass(frozen=True)
class AppView(AppSummary):
    now: datetime
    backups: list[BackupMark]
    retention: str | None
    destinations: list[DestinationView]
    drills: list[DrillEntry]
    next_drill: datetime | None
    deploys: list[DeployEntry]
    jobs: list[PlannedRun]
    heartbeats: list[HeartbeatView] = field(default_factory=list)


@dataclass(frozen=True)
class Overview:
    now: datetime
    state: str
    apps: list[AppSummary]
    targets: list[TargetView]
    jobs: list[PlannedRun]
    #: Status rows that belong to no app (the monitor's).
    site_rows: list[StatusRow] = field(default_factory=list)
    maintenance: list[MaintenanceView] = field(default_factory=list)
    #: Every app's heartbeats, in the order of the apps.
    heartbeats: list[HeartbeatView] = field(default_factory=list)


@dataclass(frozen=True)
class PublicView:
    now: datetime
    state: str
    targets: list[TargetView]


def worst(states: list[str]) -> str:
    """The worst of ``states`` ("none" when there are none)."""
    return next((state for state in STATES if state in states), "none")


def build_overview(settings: Settings, now: datetime) -> Overview:
    # The monitor's states and uptimes are read once, for the status rows and for the charts.
    statuses = monitor_status(settings, now) or []
    report = collect_status(settings, now, monitor=statuses)
    apps = [_summary(name, app, [row for row in report.rows if row.app == name], now)
            for name, app in settings.apps.items()]
    site_rows = [row for row in report.rows if row.app is None]
    # The backup directories were listed once, for the status rows: the jobs' last success is from them.
    newest = {summary.name: summary.newest_backup_at for summary in apps}
    maintenance = [MaintenanceView(window.cron, window.duration, _utc(window_start(window, now, settings.timezone)))
                   for window in settings.monitor.maintenance]
    jobs = planned_runs(settings, now, newest)
    pings = read_ping_state(settings.state_dir / HEARTBEAT_FILE)  # once, for every app
    heartbeats = [beat for name, app in settings.apps.items() for beat in _heartbeats(settings, name, app, jobs, pings)]
    return Overview(now, worst([row.state for row in report.rows]), apps, monitor_targets(settings, now, statuses),
                    jobs, site_rows, maintenance, heartbeats)


def build_app(settings: Settings, name: str, now: datetime) -> AppView:
    app = settings.apps.get(name)
    if app is None:
        raise AppNotFound(f"no app {name!r} in the configuration", hint=f"Known: {', '.join(settings.apps)}")
    # The rows collect_status makes for this app, without reading every other app's backups;
    # the app's backups and generations are listed once, for those rows and for the page's history.
    records = local_backups(name, app, settings)
    generations = local_generations(name, app, settings)
    summary = _summary(name, app, app_rows(name, app, settings, now, records, generations), now)
    plan = _retention_plan(app, settings, now, records, generations)
    jobs = [timing for timing in planned_runs(settings, now, {name: summary.newest_backup_at})
            if timing.job.endswith(f":{name}")]
    marked: list[BackupRecord | GenerationRecord] = sorted([*records, *generations],
                                                           key=lambda record: (record.created_at, record.id))
    return AppView(
        **{item.name: getattr(summary, item.name) for item in dataclasses.fields(summary)}, now=now,
        backups=_marks(marked, plan, now), retention=str(plan.policy) if plan else None,
        destinations=_destinations(app, summary.rows), drills=_drills(app), deploys=_deploys(settings, name, app),
        next_drill=next((timing.next_run for timing in jobs if timing.job == f"drill:{name}"), None), jobs=jobs,
        heartbeats=_heartbeats(settings, name, app, jobs))


def build_public(settings: Settings, now: datetime) -> PublicView:
    """Uptime only: what Uptime Kuma's public status page shows, and nothing more."""
    targets = [dataclasses.replace(target, url=None, last_failure_reason=None,
                                   incidents=[dataclasses.replace(incident, reason="", deploy_id=None, deploy_note=None)
                                              for incident in target.incidents])
               for target in monitor_targets(settings, now)]
    states = ["flagged" if target.status == "down" else "ok" if target.status == "up" else "none" for target in targets]
    return PublicView(now, worst(states), targets)


def monitor_targets(settings: Settings, now: datetime, statuses: list[TargetStatus] | None = None) -> list[TargetView]:
    """Each target with its chart and incidents; ``statuses``: its state and uptime
    (:func:`railguard.monitor.report.monitor_status`) when the caller has read them."""
    if statuses is None:
        statuses = monitor_status(settings, now) or []
    path = settings.state_dir / MONITOR_FILE
    if not statuses or not path.exists():
        return []
    store = MonitorStore(path)
    try:
        targets = []
        for target in statuses:
            state = target.state
            points = store.checks(target.name, now - CHART_SPAN, now, at_most=MAX_POINTS)
            incidents = list(reversed(store.incidents(target.name, now - HISTORY)))
            targets.append(TargetView(target.name, state.status, target.uptime, points, incidents,
                                      down_since=state.down_since, url=target.url,
                                      last_failure_reason=redact(state.last_failure_reason or "") or None))
        return targets
    finally:
        store.close()


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(timezone.utc) if moment else None


def _summary(name: str, app: AppSettings, rows: list[StatusRow], now: datetime) -> AppSummary:
    """An app's state and recovery point from its status rows: the newest good backup, of
    either kind, is the time of the ``backup`` row, which :func:`railguard.status.backup_rows`
    gives only when there is one, and its state is that row's."""
    backup = next((row for row in rows if row.name == "backup"), None)
    at = backup.at if backup else None
    point = RecoveryPoint(at, now - at if at else None, backup.state if backup else "none", app.backup.kind)
    return AppSummary(name, worst([row.state for row in rows]), at, rows, point)


def _retention_plan(app: AppSettings, settings: Settings, now: datetime, records: list[BackupRecord],
                    generations: list[GenerationRecord]) -> Plan | None:
    """What the app's prune would decide (``railguard prune``, the backup job's): over its
    generations for a ``kind = "pages"`` app, over its whole-file backups otherwise."""
    policy = Policy.from_settings(app.retention)
    pages = app.backup.kind == "pages"
    if policy.is_empty() or not (generations if pages else records):
        return None
    protected = read_protections(app.backup.directory)
    if pages:
        # Only a store's app pays for the retention module's page store imports (pydantic's).
        from railguard.retention.prune import plan_generations

        return plan_generations(generations, policy, now=now, tz=settings.timezone, protected=protected)
    return apply_policy(records, policy, now=now, tz=settings.timezone, protected=protected)


def _marks(records: list[BackupRecord | GenerationRecord], plan: Plan | None, now: datetime) -> list[BackupMark]:
    """The backups panel, oldest first: every backup and generation of the last :data:`HISTORY`,
    with the retention decision of ``plan`` where it has one for it."""
    decisions = {decision.name: decision for decision in plan.decisions} if plan else {}
    marks = []
    for record in records:
        if now - record.created_at > HISTORY:
            continue
        decision = decisions.get(record.name)
        if isinstance(record, BackupRecord):
            kind, stored, pages = "file", _stored_bytes(record), None
        else:
            # What a generation stored is the new pages it added, packed; its size is its pages.
            manifest = record.manifest
            kind = "generation"
            stored = manifest.new_bytes if manifest else 0
            pages = manifest.page_count if manifest else None
        marks.append(BackupMark(
            record.name, record.created_at, record.is_good, stored, record.reason,
            retention=decision.action if decision else None, reasons=decision.reasons if decision else (),
            protection=decision.protection.describe() if decision and decision.protection else None,
            kind=kind, pages=pages))
    return marks


def _stored_bytes(record: BackupRecord) -> int:
    if record.manifest is not None:
        return record.manifest.size_stored
    try:
        return record.data_path.stat().st_size if record.data_path else 0
    except OSError:
        return 0


def _destinations(app: AppSettings, rows: list[StatusRow]) -> list[DestinationView]:
    lines = read_copy_log(app.backup.directory) if app.destinations else []
    by_row = {row.name.removeprefix("destination:"): row for row in rows if row.name.startswith("destination:")}
    views = []
    for name in sorted(app.destinations):
        ok = [line for line in lines if line.get("destination") == name and line.get("result") == "ok"]
        row = by_row.get(name)
        views.append(DestinationView(name, row.state if row else "none", redact(row.detail) if row else "",
                                     len({line.get("backup") for line in ok}), line_time(ok[-1]) if ok else None))
    return views


def _drills(app: AppSettings) -> list[DrillEntry]:
    entries = []
    for line in reversed(read_drill_log(app.backup.directory)):
        at = line_time(line)
        if at is None:
            continue
        try:
            seconds: float | None = float(line["total_s"])
        except (KeyError, ValueError):
            seconds = None
        failed = "" if drill_passed(line) else f"{line.get('step') or '?'}: {line.get('error') or line.get('reason') or ''}"
        # The line's "output" (the app's last lines) is a log: it never reaches a view.
        entries.append(DrillEntry(at, drill_passed(line), line.get("result", "?"), line.get("backup", ""), seconds,
                                  redact(failed.strip().rstrip(":"))))
        if len(entries) == MAX_ROWS:
            break
    return entries


def _deploys(settings: Settings, name: str, app: AppSettings) -> list[DeployEntry]:
    path = state_path(settings.state_dir, app.deploy.state_file)
    if not path.exists():
        return []
    records = DeployState(path).history(name)[:MAX_ROWS]
    # Only the run's id and status: its commit message and test log stay on the gate.
    runs = runs_by_deploy(settings, name, [record.id for record in records])
    gate = settings.gate.public_url
    entries = []
    for record in records:
        run = runs.get(record.id)
        entries.append(DeployEntry(
            record.started_at, record.finished_at, record.kind,
            record.tag or (record.git_hash or "")[:12] or record.ref or "", record.result, redact(record.detail or ""),
            gate_run=run.id if run else None, gate_status=run.status if run else None,
            gate_url=run_url(gate, run.id) if run and gate else None))
    return entries


def _heartbeats(settings: Settings, name: str, app: AppSettings, jobs: list[PlannedRun],
                pings: dict[str, dict[str, Any]] | None = None) -> list[HeartbeatView]:
    daemon_jobs = {timing.job for timing in jobs}
    return [_heartbeat_view(record, daemon_jobs) for record in configured_heartbeats(settings, name, app, state=pings)]


def _heartbeat_view(record: HeartbeatRecord, daemon_jobs: set[str]) -> HeartbeatView:
    failure = record.last_failure_reason or ("?" if record.last_failure_at else "")
    if failure and record.last_failure_signal:
        failure += f" (ping {record.last_failure_signal})"
    daemon_job = f"{record.job}:{record.app}"
    return HeartbeatView(record.app, record.job, record.source, daemon_job if daemon_job in daemon_jobs else None,
                         record.last_ping_at, record.last_result, record.pings, record.failures, failure,
                         record.last_failure_at)


def plain(value: Any) -> Any:
    """A view as JSON-ready values: dataclasses as objects, times in ISO 8601, durations in seconds."""
    if isinstance(value, Incident):
        # The deploy keys only for an outage that came with a deploy: the public view, which
        # clears them, says nothing about deploys at all.
        deploy = {} if value.deploy_id is None else {"deploy_id": value.deploy_id, "deploy_note": value.deploy_note}
        return {"target": value.target, "started_at": plain(value.started_at), "ended_at": plain(value.ended_at),
                "reason": value.reason, "duration_seconds": None if value.ended_at is None
                else (value.ended_at - value.started_at).total_seconds(), **deploy}
    if isinstance(value, StatusRow):
        return {"app": value.app, "name": value.name, "state": value.state, "detail": redact(value.detail),
                "at": plain(value.at)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: plain(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
