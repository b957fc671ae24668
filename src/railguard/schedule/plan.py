"""Schedules: a cron expression (``"30 3 * * *"``, in the configured time zone) or an interval
(``"every 60s"``).

Cron expressions go through cronsim, the parser healthchecks.io uses: it handles daylight
saving time the way people expect (a 02:30 job runs once on the night the clocks change).

Catch-up rule: when the daemon starts, a job runs at once if its last success is older than the
scheduled run before now, i.e. a run was missed while the daemon was down. A job that has never
succeeded counts as missed.
"""

from __future__ import annotations

from datetime import datetime


# A schedule and its parser live in railguard.values: the configuration validates with them.
from railguard.values import Schedule as Schedule, ScheduleError as ScheduleError, parse_schedule as parse_schedule


def is_due_at_start(schedule: Schedule, last_success: datetime | None, now: datetime, tz: str) -> bool:
    """Should the job run right away because the daemon missed a run while it was down?"""
    if last_success is None:
        return True
    return last_success < schedule.previous_at_or_before(now, tz)
