"""Maintenance windows: a cron expression for each start plus a duration; pure in ``now``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from railguard.config import MaintenanceWindow


def window_start(window: MaintenanceWindow, now: datetime, tz: str = "UTC") -> datetime | None:
    """Start of the window that contains ``now``, or None when ``now`` lies outside every run."""
    local = now.astimezone(ZoneInfo(tz))
    # cronsim's reverse iteration yields matches strictly before its start; one second past
    # ``now`` (cron has minute resolution) makes a window that starts exactly now count.
    probe = local.replace(microsecond=0) + timedelta(seconds=1)
    start = next(CronSim(window.cron, probe, reverse=True), None)
    if start is None:
        return None
    return start if start <= local < start + window.duration else None


def active_window(windows: Iterable[MaintenanceWindow], now: datetime, tz: str = "UTC") -> MaintenanceWindow | None:
    for window in windows:
        if window_start(window, now, tz) is not None:
            return window
    return None
