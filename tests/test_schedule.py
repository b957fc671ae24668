"""Schedules and the catch-up rule, on a fixed clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from railguard.schedule import ScheduleError, is_due_at_start, parse_schedule

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_daily_cron_runs_next_at_its_time_in_the_configured_zone():
    daily = parse_schedule("30 3 * * *")
    # 03:30 in Madrid is 02:30 UTC in winter.
    assert daily.next_after(at("2026-11-27 10:00"), "Europe/Madrid") == at("2026-11-28 02:30")
    assert daily.next_after(at("2026-11-27 10:00"), "UTC") == at("2026-11-28 03:30")


def test_the_monthly_drill_runs_on_the_first():
    monthly = parse_schedule("0 4 1 * *")
    assert monthly.next_after(at("2026-11-27 10:00"), "UTC") == at("2026-12-01 04:00")


def test_an_interval_schedule_counts_from_the_last_run():
    every = parse_schedule("every 90s")
    assert every.next_after(at("2026-11-27 10:00"), "UTC") == at("2026-11-27 10:01:30")


@pytest.mark.parametrize("last, now, due", [
    (None, "2026-11-27 10:00", True),                   # never ran: run now
    ("2026-11-27 03:31", "2026-11-27 10:00", False),    # today's run happened
    ("2026-11-26 03:31", "2026-11-27 10:00", True),     # down over today's 03:30: catch up
    ("2026-11-26 03:31", "2026-11-27 03:00", False),    # today's run is still ahead
    ("2026-11-20 03:31", "2026-11-27 03:00", True),     # a week down
])
def test_catch_up_after_downtime(last, now, due):
    daily = parse_schedule("30 3 * * *")
    assert is_due_at_start(daily, at(last) if last else None, at(now), "UTC") is due


def test_catch_up_for_an_interval_job():
    every = parse_schedule("every 1m")
    assert is_due_at_start(every, at("2026-11-27 10:00"), at("2026-11-27 10:00:30"), "UTC") is False
    assert is_due_at_start(every, at("2026-11-27 10:00"), at("2026-11-27 10:01:30"), "UTC") is True


@pytest.mark.parametrize("text", ["61 * * * *", "every day", "* * *", "every 0s", ""])
def test_a_bad_schedule_says_what_is_expected(text):
    with pytest.raises(ScheduleError, match="expected|interval|duration"):
        parse_schedule(text)


def test_next_run_skips_nothing_across_a_dst_change():
    daily = parse_schedule("30 3 * * *")
    # Spain leaves summer time on 2026-10-25 at 03:00 local: 03:30 happens once that day.
    first = daily.next_after(at("2026-10-23 12:00"), "Europe/Madrid")  # 10-24 03:30 CEST
    second = daily.next_after(first, "Europe/Madrid")
    assert second - first == timedelta(hours=25)
