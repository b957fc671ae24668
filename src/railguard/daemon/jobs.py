"""Which jobs the configuration enables, the command line each one runs, when each runs next
(``railguard schedule``), and what the daemon reads from a finished backup job's report.

A backup job runs ``railguard backup --json``: its one JSON document is the job's report (the
CLI's ``backup`` renders the same report as text), so the daemon's log line and run log can
name what the prune after the backup removed, here and at each destination, instead of only
the last line of the output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.backup.catalog import Owner, list_backups
from railguard.config import Settings
from railguard.daemon.runlog import RunLog
from railguard.schedule import Schedule, is_due_at_start, parse_schedule

#: The daemon's record of its runs, in the state directory.
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
    #: Reads the job's report from its output (stdout and stderr as they came); None: the last
    #: line of the output is all the daemon says about a run.
    read_report: Callable[[str], Outcome | None] | None = field(default=None, compare=False)

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
            jobs.append(Job(f"backup:{name}",
                            railguard_argv(settings, "--app", name, "backup", "--scheduled", "--json"),
                            parse_schedule(app.schedule.backup), app=name, read_report=read_backup_report))
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


def runlog_path(settings: Settings) -> Path:
    return settings.state_dir / RUNLOG_NAME


@dataclass(frozen=True)
class PlannedRun:
    """One job as ``railguard schedule`` and the status page show it: when it runs next, as the
    daemon would plan it now."""

    job: str
    #: The schedule as written, or "always running" for a service.
    schedule: str
    #: None for a service (always running); ``now`` when a run was missed (catch-up).
    next_run: datetime | None
    #: A run was missed: the daemon starts it as soon as it starts.
    catch_up: bool
    last_success: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "schedule": self.schedule, "next_run": self.next_run, "catch_up": self.catch_up,
                "last_success": self.last_success}


def planned_runs(settings: Settings, now: datetime,
                 newest_good: Mapping[str, datetime | None] | None = None) -> list[PlannedRun]:
    """Every job the daemon runs, its next run and its last success, at ``now``: a job whose
    last success is older than its previous scheduled run is due at once, as the daemon's own
    start decides (:func:`railguard.schedule.is_due_at_start`). Reads the run log if there is
    one and never creates it; the newest good backup of each app comes from its backup
    directory, or from ``newest_good`` when the caller has already listed them (as
    :func:`last_success` takes it)."""
    path = runlog_path(settings)
    runlog = RunLog(path) if path.exists() else None
    try:
        planned = []
        for job in plan_jobs(settings):
            last = last_success(job, runlog, settings, newest_good)
            if job.schedule is None:
                next_run, catch_up = None, False
            else:
                catch_up = is_due_at_start(job.schedule, last, now, settings.timezone)
                next_run = now if catch_up else job.schedule.next_after(now, settings.timezone)
            planned.append(PlannedRun(job.name, str(job.schedule) if job.schedule else "always running",
                                      next_run, catch_up, last))
        return planned
    finally:
        if runlog is not None:
            runlog.close()


@dataclass(frozen=True)
class Outcome:
    """What a finished run's report says: one line for the run log, and the log line's fields."""

    summary: str
    fields: dict[str, str] = field(default_factory=dict)


def read_backup_report(output: str) -> Outcome | None:
    """The backup job's report (``railguard backup --json``'s document) as an :class:`Outcome`:
    the backup's name, what prune removed here (``pruned``, only when it ran) and the copies it
    removed at each destination (``pruned_copies``, ``DEST:NAME``, only with destinations).
    None when the output holds no report (the job was killed before it could write one), or one
    of another shape: the daemon then logs the output's last line, and goes on."""
    document = _last_document(output)
    if document is None:
        return None
    try:
        return _outcome(document)
    except (AttributeError, KeyError, TypeError):  # not the document this railguard writes
        return None


def _outcome(document: dict[str, Any]) -> Outcome:
    if document.get("ok") is not True:
        error = document.get("error")
        return Outcome(f"error: {error}")
    steps: dict[str, Any] = document.get("steps") or {}
    name = Path(str(document.get("file", ""))).name
    fields = {"backup": name}
    parts = [f"backup {name}"]
    prune = steps.get("prune")
    if prune is not None:
        removed = [str(item) for item in prune.get("removed", [])]
        fields["pruned"] = ",".join(removed)
        parts.append(f"pruned {', '.join(removed) or 'nothing'}")
    destinations = steps.get("destinations")
    if destinations is not None:
        copies = [(str(run["name"]), str(item)) for run in destinations for item in run.get("pruned", [])]
        fields["pruned_copies"] = ",".join(f"{destination}:{item}" for destination, item in copies)
        parts += [f"{run['name']} pruned {', '.join(run['pruned'])}" for run in destinations if run.get("pruned")]
    parts += [f"warning: {message}" for message in document.get("warnings", [])]
    return Outcome("; ".join(parts), fields)


def _last_document(output: str) -> dict[str, Any] | None:
    """The last JSON object in ``output`` that starts a line (``--json`` writes it indented, after
    whatever went to stderr before it)."""
    decoder = json.JSONDecoder()
    lines = output.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for index in range(len(lines) - 1, -1, -1):
        if not lines[index].startswith("{"):
            continue
        try:
            document, _end = decoder.raw_decode(output, offsets[index])
        except ValueError:
            continue
        if isinstance(document, dict):
            return document
    return None
