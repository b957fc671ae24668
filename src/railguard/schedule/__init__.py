"""When jobs run: cron or interval schedules, and the catch-up rule after downtime.

Pure functions of (schedule, last success, now); the daemon owns the clock and the side effects.
"""

from railguard.schedule.plan import Schedule, ScheduleError, is_due_at_start, parse_schedule

__all__ = ["Schedule", "ScheduleError", "is_due_at_start", "parse_schedule"]
