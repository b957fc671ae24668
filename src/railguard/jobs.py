"""Jobs: what one scheduled run does from start to end, shared by the CLI and the daemon.

A job strings library calls together (backup, then prune, then copies off the host, with
heartbeats, metrics and notifications around it) and returns one report. The CLI renders
that report; the daemon logs it. Each step that follows the backup must not undo it: a
failing later step turns the result into a warning, never into a lost backup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from railguard.backup import BackupResult, take_backup
from railguard.backup.engine import Progress
from railguard.config import AppSettings, Settings
from railguard.errors import ExitCode


@dataclass
class BackupJobReport:
    app: str
    backup: BackupResult
    #: Problems after the backup itself succeeded (foreign keys, prune, a destination, ...).
    warnings: list[str] = field(default_factory=list)
    #: Extra sections of the report, one per later step ("prune", "destinations", ...).
    steps: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.WARNING if self.warnings else ExitCode.OK


def backup_job(settings: Settings, app_name: str, app: AppSettings, *, now: datetime,
               progress: Progress | None = None) -> BackupJobReport:
    """Take a verified backup of one app, then run the steps that follow it."""
    result = take_backup(app.database, app.backup, now=now, tz=settings.timezone, progress=progress)
    report = BackupJobReport(app=app_name, backup=result, warnings=list(result.warnings))
    return report
