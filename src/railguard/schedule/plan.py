"""Schedules: a cron expression (``"30 3 * * *"``, in the configured time zone) or an interval
(``"every 60s"``).

Cron expressions go through cronsim, the parser healthchecks.io uses: it handles daylight
saving time the way people expect (a 02:30 job runs once on the night the clocks change).

Catch-up rule: when the daemon starts, a job runs at once if its last success is older than the
scheduled run before now, i.e. a run was missed while the daemon was down. A job that has never
succeeded counts as missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from railguard.config import parse_duration


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    text: str
    cron: str | None = None
    every: timedelta | None = None

    def next_after(self, moment: datetime, tz: str) -> datetime:
        """The first run strictly after ``moment`` (an aware datetime)."""
        if self.every is not None:
            return moment + self.every
        local = moment.astimezone(ZoneInfo(tz))
        return next(iter(CronSim(self.cron, local.replace(microsecond=0)))).astimezone(moment.tzinfo)

    def previous_at_or_before(self, moment: datetime, tz: str) -> datetime:
        """The last scheduled run at or before ``moment``."""
        if self.every is not None:
            return moment - self.every
        local = moment.astimezone(ZoneInfo(tz))
        # cronsim's reverse iteration starts strictly before its start: add a second to include ``moment``.
        start = local.replace(microsecond=0) + timedelta(seconds=1)
        return next(iter(CronSim(self.cron, start, reverse=True))).astimezone(moment.tzinfo)

    def __str__(self) -> str:
        return self.text


def parse_schedule(text: str) -> Schedule:
    """``"30 3 * * *"`` or ``"every 90s"`` / ``"every 5m"``; raises :class:`ScheduleError`."""
    stripped = " ".join(text.split())
    if stripped.startswith("every "):
        try:
            every = parse_duration(stripped.removeprefix("every "))
        except ValueError as exc:
            raise ScheduleError(f"{text!r}: {exc}") from None
        if every.total_seconds() < 1:
            raise ScheduleError(f"{text!r}: an interval must be at least 1s")
        return Schedule(stripped, every=every)
    try:
        CronSim(stripped, datetime(2026, 1, 1))
    except (CronSimError, ValueError, IndexError) as exc:
        raise ScheduleError(f"{text!r} is not a cron expression ({exc}); expected five fields such as "
                            f"'30 3 * * *', or an interval such as 'every 60s'") from None
    return Schedule(stripped, cron=stripped)


def is_due_at_start(schedule: Schedule, last_success: datetime | None, now: datetime, tz: str) -> bool:
    """Should the job run right away because the daemon missed a run while it was down?"""
    if last_success is None:
        return True
    return last_success < schedule.previous_at_or_before(now, tz)
