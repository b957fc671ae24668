"""Which jobs the configuration enables, and the command line each one runs."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from railguard.backup.catalog import Owner, list_backups
from railguard.config import Settings
from railguard.daemon.runlog import RunLog
from railguard.schedule import Schedule, is_due_at_start, parse_schedule

#: The daemon's run log, in ``state_dir``.
RUNLOG_NAME = "daemon.db"


@dataclass(frozen=True)
class Job:
    #: ``backup:tasks``, ``drill:tasks``, ``monitor``, ``gate``.
    name: str
    argv: tuple[str, ...]
    #: None for a service: started once, restarted when it exits.
    schedule: Schedule | None
    #: The app a per-app job works on.
    app: str | None = None

    @property
    def is_service(self) -> bool:
        return self.schedule is None


def railguard_argv(settings: Settings, *args: str) -> tuple[str, ...]:
    config = ("--config", str(settings.source.absolute())) if settings.source else ()
    return (sys.executable, "-m", "railguard", *config, *args)


def plan_jobs(settings: Settings) -> list[Job]:
    jobs = []
    for name, app in settings.apps.items():
        if app.schedule.backup:
            # --scheduled: not a backup taken by hand, so not protected for keep_manual.
            jobs.append(Job(f"backup:{name}", railguard_argv(settings, "--app", name, "backup", "--scheduled"),
                            parse_schedule(app.schedule.backup), app=name))
        if app.schedule.drill and (app.drill.command or app.drill.image):
            jobs.append(Job(f"drill:{name}", railguard_argv(settings, "--app", name, "drill"),
                            parse_schedule(app.schedule.drill), app=name))
    if settings.daemon.monitor and _has_monitor_targets(settings):
        jobs.append(Job("monitor", railguard_argv(settings, "monitor"), None))
    if settings.daemon.gate:
        jobs.append(Job("gate", railguard_argv(settings, "gate", "serve"), None))
    return jobs


def jobs_not_run(settings: Settings) -> list[tuple[str, str]]:
    """(job, why) for each per-app job :func:`plan_jobs` leaves out, so ``railguard schedule``
    can say that a drill never runs instead of leaving it out in silence."""
    missing = []
    for name, app in settings.apps.items():
        if not app.schedule.backup:
            missing.append((f"backup:{name}", f"[apps.{name}.schedule] backup is empty"))
        if not app.schedule.drill:
            missing.append((f"drill:{name}", f"[apps.{name}.schedule] drill is empty"))
        elif not (app.drill.command or app.drill.image):
            missing.append((f"drill:{name}", f"[apps.{name}.drill] has no command or image"))
    return missing


def _has_monitor_targets(settings: Settings) -> bool:
    return bool(settings.monitor.targets) or any(app.url for app in settings.apps.values())


def last_success(job: Job, runlog: RunLog | None, settings: Settings,
                 newest_good: Mapping[str, datetime | None] | None = None) -> datetime | None:
    """When the job last succeeded: the daemon's own record, or, for a backup, the newest good
    backup in the directory, whoever took it (by hand, cron, or an earlier daemon), so a manual
    backup after a missed night counts and the daemon does not take another at once.
    ``newest_good``: each app's newest good backup, for a caller that has just listed them."""
    recorded = runlog.last_success(job.name) if runlog is not None else None
    if not job.name.startswith("backup:") or job.app is None:
        return recorded
    if newest_good is not None and job.app in newest_good:
        newest = newest_good[job.app]
    else:
        app = settings.apps[job.app]
        newest = max((record.created_at for record in list_backups(app.backup.directory,
                                                                   Owner.of(settings, job.app, app))
                      if record.is_good), default=None)
    return max([moment for moment in (recorded, newest) if moment is not None], default=None)


@dataclass(frozen=True)
class JobTiming:
    """What ``railguard schedule`` and the status page show of one job."""

    job: str
    #: The schedule as written, or "always running" for a service.
    schedule: str
    next_run: datetime | None
    #: A run was missed: the daemon starts it as soon as it starts.
    catch_up: bool
    last_success: datetime | None


def job_timings(settings: Settings, now: datetime,
                newest_good: Mapping[str, datetime | None] | None = None) -> list[JobTiming]:
    """Every job the daemon runs, its next run and last success, from the daemon's run log
    (read only when it exists: nothing here creates it) and the backup directories (or
    ``newest_good``, as :func:`last_success` takes it)."""
    path = settings.state_dir / RUNLOG_NAME
    runlog = RunLog(path) if path.exists() else None
    try:
        timings = []
        for job in plan_jobs(settings):
            last = last_success(job, runlog, settings, newest_good)
            if job.schedule is None:
                next_run, catch_up = None, False
            else:
                catch_up = is_due_at_start(job.schedule, last, now, settings.timezone)
                next_run = now if catch_up else job.schedule.next_after(now, settings.timezone)
            timings.append(JobTiming(job.name, str(job.schedule) if job.schedule else "always running",
                                     next_run, catch_up, last))
        return timings
    finally:
        if runlog is not None:
            runlog.close()
