"""Jobs: what one scheduled run does from start to end, shared by the CLI and the daemon.

A job strings library calls together (backup, then prune, then copies off the host, with
heartbeats, metrics and notifications around it) and returns one report. The CLI renders
that report; the daemon logs it. Each step that follows the backup must not undo it: a
failing later step turns the result into a warning, never into a lost backup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from railguard.backup import BackupResult, take_backup
from railguard.backup.catalog import Owner, list_backups
from railguard.backup.protection import Protection, protect
from railguard.config import AppSettings, Settings
from railguard.destinations.replicate import exit_code_for, replicate
from railguard.errors import ExitCode, RailguardError
from railguard.metrics import refresh_textfile
from railguard.pages.writer import GenerationResult, take_generation
from railguard.retention import Policy, prune_backups, prune_generations
from railguard.notify.watch import JobWatch
from railguard.progress import Progress


@dataclass
class BackupJobReport:
    app: str
    #: A whole-file backup, or a page generation (``[apps.NAME.backup] kind = "pages"``).
    backup: BackupResult | GenerationResult
    #: Problems after the backup itself succeeded (foreign keys, prune, a destination, ...).
    warnings: list[str] = field(default_factory=list)
    #: Extra sections of the report, one per later step ("prune", "destinations", ...).
    steps: dict[str, Any] = field(default_factory=dict)
    #: The protection from prune given to this backup (a hand-run one, or ``--keep``), or None.
    protection: Protection | None = None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.WARNING if self.warnings else ExitCode.OK


MANUAL_REASON = "taken by hand"


def backup_job(settings: Settings, app_name: str, app: AppSettings, *, now: datetime,
               progress: Progress | None = None, manual: bool = False,
               keep: str | None = None) -> BackupJobReport:
    """Take a verified backup of one app, then run the steps that follow it.

    ``keep`` protects the new backup from prune until it is unkept (``railguard backup --keep``);
    otherwise a ``manual`` one (run by hand, not by the schedule) is protected for
    ``[apps.NAME.backup] keep_manual``. The protection is written before the prune that follows,
    so that prune already spares it and counts the nightly backup of the same day.
    """
    watch = JobWatch(settings, app_name, app, "backup", now=now, refresh_metrics=refresh_textfile)
    watch.start()
    take = take_generation if app.backup.kind == "pages" else take_backup
    try:
        result: BackupResult | GenerationResult = take(app.database, app.backup, now=now, tz=settings.timezone,
                                                       progress=progress, app=app_name)
    except BaseException as exc:
        watch.failed(exc)  # heartbeat /<exit code>, notification, metrics; then the error stands
        raise
    report = BackupJobReport(app=app_name, backup=result, warnings=list(result.warnings))
    # Without its protection the prune could remove an older backup in its favour: skip it then.
    prune = _protect_new(app, report, now, manual, keep) and app.backup.prune
    if prune:
        _prune_local(settings, app_name, app, report, now)
    if app.destinations:
        _copy_off_host(settings, app_name, app, report, now, prune, progress)
    report.steps.update(watch.succeeded(report.exit_code, _job_log(report)))
    return report


def _protect_new(app: AppSettings, report: BackupJobReport, now: datetime, manual: bool, keep: str | None) -> bool:
    """Protect the new backup when asked to; False when that failed (a warning, never a lost backup)."""
    if keep is None and not (manual and app.backup.keep_manual > timedelta(0)):
        return True
    until = None if keep is not None else now + app.backup.keep_manual
    try:
        report.protection = protect(app.backup.directory, report.backup.manifest.name, keep or MANUAL_REASON,
                                    until=until, now=now)
    except OSError as exc:
        report.warnings.append(f"could not protect {report.backup.manifest.name} from prune: "
                               f"{exc.strerror or exc}; prune skipped this time")
        return False
    return True


def _copy_off_host(settings: Settings, app_name: str, app: AppSettings, report: BackupJobReport,
                   now: datetime, prune: bool, progress: Progress | None = None) -> None:
    """Copy to every destination and verify there; a failure is a warning, never a lost backup."""
    try:
        runs = replicate(settings, app_name, app, now=now, prune=prune, progress=progress)
    except RailguardError as exc:  # Busy: a `railguard replicate` of this app is running
        report.warnings.append(f"copies to destinations skipped: {exc.message}; the next backup or "
                               "`railguard replicate` copies this one")
        return
    report.steps["destinations"] = [run.summary() for run in runs]
    for run in runs:
        report.warnings.extend(run.problems())


def _prune_local(settings: Settings, app_name: str, app: AppSettings, report: BackupJobReport, now: datetime) -> None:
    """Apply the retention policy to the backup directory; a failure is a warning, never a lost backup."""
    pages = app.backup.kind == "pages"
    owner, policy = Owner.of(settings, app_name, app), Policy.from_settings(app.retention)
    try:
        result = (prune_generations if pages else prune_backups)(app.backup.directory, owner, policy, now=now,
                                                                  tz=settings.timezone)
        # Whole-file backups beside generations (pre-deploy snapshots, those from before kind =
        # "pages") follow the same policy, or they would pile up once their protection ends.
        whole_file = (prune_backups(app.backup.directory, owner, policy, now=now, tz=settings.timezone)
                      if pages and list_backups(app.backup.directory, owner) else None)
    except (RailguardError, OSError) as exc:
        report.warnings.append(f"prune failed: {getattr(exc, 'message', None) or exc}")
        return
    report.steps["prune"] = result.summary()
    if whole_file is not None:
        report.steps["prune"]["whole_file"] = whole_file.summary()
    for left in [*result.plan.leave, *(whole_file.plan.leave if whole_file else [])]:
        report.warnings.append(f"backup {left.name} is {left.backup.reason}: prune leaves it for you to inspect")


def replicate_job(settings: Settings, app_name: str, app: AppSettings, *, now: datetime, only: str | None = None,
                  fill_gaps: bool = False, prune: bool = False,
                  progress: Progress | None = None) -> tuple[list[Any], dict[str, Any]]:
    """``railguard replicate`` with its heartbeat (``replicate_url_env``) around it.

    Returns the per-destination runs and the watch's summary (heartbeat pings)."""
    watch = JobWatch(settings, app_name, app, "replicate", now=now, refresh_metrics=refresh_textfile)
    watch.start()
    try:
        runs = replicate(settings, app_name, app, now=now, only=only, fill_gaps=fill_gaps, prune=prune,
                         progress=progress)
    except BaseException as exc:
        watch.failed(exc)
        raise
    problems = [problem for run in runs for problem in run.problems()]
    text = "\n".join([f"{run.name}: copied {len(run.copied)}, already there {run.present}" for run in runs]
                     + [f"warning: {problem}" for problem in problems])
    return runs, watch.succeeded(exit_code_for(runs), text)


def _job_log(report: BackupJobReport) -> str:
    """The heartbeat's body: the short log a person reads on healthchecks' page, naming what
    the prune after the backup removed as the CLI's output does."""
    manifest = report.backup.manifest
    lines = [f"backup {report.backup.path.name}: {manifest.size_raw} bytes -> {manifest.size_stored} bytes, "
             f"{manifest.check}_check {manifest.check_result}, {manifest.durations.get('total', 0):.1f}s"]
    lines += after_backup_lines(report.protection.describe() if report.protection else None, report.steps)
    return "\n".join(lines + [f"warning: {message}" for message in report.warnings])


def after_backup_lines(protection: str | None, steps: dict[str, Any]) -> list[str]:
    """What the job did after the backup, one line each: nothing it removed goes unsaid."""
    lines = [protection] if protection else []
    prune = steps.get("prune")
    if prune is not None:
        removed = prune["removed"]
        lines.append(f"pruned here ({prune['policy']}): " + (", ".join(removed) if removed else "nothing removed"))
    for run in steps.get("destinations", []):
        copied = ", ".join(run["copied"]) if run["copied"] else "nothing new"
        line = f"destination {run['name']}: copied {copied}"
        if run["pruned"]:
            line += f"; pruned {', '.join(run['pruned'])}"
        lines.append(line)
    return lines
