"""Bounded history: raw checks for a short window, then hourly aggregates, then nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from railguard.config import Settings
from railguard.errors import Busy, ExitCode
from railguard.monitor.runner import monitor_store
from railguard.monitor.state import CheckResult, TargetState
from railguard.monitor.store import MonitorStore

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc)


def fill(store: MonitorStore, days: int, *, every: timedelta = timedelta(minutes=5),
         failing_hours: frozenset[int] = frozenset()) -> datetime:
    """One check every five minutes for ``days``; checks in ``failing_hours`` (hours since T0) fail. Compacts hourly."""
    moment = T0
    end = T0 + timedelta(days=days)
    batch = []
    while moment < end:
        hour = int((moment - T0).total_seconds() // 3600)
        batch.append(("app", "http://127.0.0.1/health", CheckResult(hour not in failing_hours, moment, "x", 0.01),
                      TargetState()))
        moment += every
        if moment.minute == 0:
            store.record(batch)
            batch = []
            store.compact(moment, timedelta(hours=48), timedelta(days=35))
    store.record(batch)
    return moment


def test_history_stays_bounded_over_forty_days(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    fill(store, 40)
    raw, hourly = store.counts()
    assert raw <= 49 * 12  # 48 h of raw checks plus the hour being filled
    assert hourly <= 35 * 24 + 1
    assert (tmp_path / "monitor.sqlite3").stat().st_size < 2_000_000


def test_uptime_counts_both_raw_checks_and_hourly_aggregates(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    # Ten failing hours ten days back (hourly rows by now) and two one day back (still raw).
    end = fill(store, 12, failing_hours=frozenset(range(24 * 2, 24 * 2 + 10)) | {24 * 11, 24 * 11 + 1})
    week = store.uptime("app", end - timedelta(days=7))
    day = store.uptime("app", end - timedelta(days=1))
    month = store.uptime("app", end - timedelta(days=30))
    assert day.checks == 24 * 12 and day.failures == 2 * 12
    assert week.failures == 2 * 12 and week.checks == 7 * 24 * 12
    assert month.checks == 12 * 24 * 12 and month.failures == 12 * 12
    assert month.ratio == 1 - 12 / (12 * 24)


def test_uptime_of_a_target_never_checked_is_unknown(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    assert store.uptime("nothing", T0).ratio is None


def test_a_second_monitor_on_the_same_state_is_refused_by_the_library_not_only_by_the_cli(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    with monitor_store(settings) as store:
        store.record([("app", "http://127.0.0.1/health", CheckResult(True, T0, "x", 0.01), TargetState())])
        with pytest.raises(Busy) as refused, monitor_store(settings):
            pass
    assert refused.value.exit_code == ExitCode.BUSY
    assert refused.value.message == "another railguard run is already working on the monitor"
    with monitor_store(settings) as again:  # released when the first one closed
        assert again.counts()[0] == 1


def run_checks(store: MonitorStore, outcomes: str, *, start: datetime = T0, every: timedelta = timedelta(minutes=1),
               silenced: bool = False) -> TargetState:
    """One round per character ("+" a success, "-" a failure) through the real state machine."""
    from railguard.monitor.state import Policy, step

    state = TargetState()
    for index, outcome in enumerate(outcomes):
        check = CheckResult(outcome == "+", start + index * every, "HTTP 503" if outcome == "-" else "", 0.02)
        state, _ = step(state, check, Policy(failure_threshold=3, success_threshold=2), silenced=silenced)
        store.record([("app", "http://127.0.0.1/health", check, state)])
    return state


def test_an_outage_is_one_incident_from_the_first_failure_to_the_first_success_of_the_recovery(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    # Minute 2: the first failure of the streak; minute 7: the first success of the recovery streak.
    run_checks(store, "++-----++++--+++")
    [incident] = store.incidents("app", T0)
    assert (incident.started_at, incident.ended_at, incident.reason) == (
        T0 + timedelta(minutes=2), T0 + timedelta(minutes=7), "HTTP 503")
    assert incident.duration(T0 + timedelta(days=1)) == timedelta(minutes=5)


def test_an_outage_still_going_on_has_no_end_and_lasts_until_now(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    run_checks(store, "+----", silenced=True)  # a maintenance window silences the alert, not the record
    [incident] = store.incidents("app", T0)
    assert incident.ended_at is None
    assert incident.duration(T0 + timedelta(minutes=31)) == timedelta(minutes=30)


def test_incidents_ended_before_the_hourly_history_go_with_it(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    run_checks(store, "+---++")
    store.compact(T0 + timedelta(days=40), timedelta(hours=48), timedelta(days=35))
    assert store.incidents("app", T0) == []


def test_the_chart_points_are_the_raw_checks_and_the_hourly_means(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    end = fill(store, 3)
    raw = store.checks("app", end - timedelta(hours=24), end)
    assert len(raw) == 24 * 12 and all(point.response_time == 0.01 for point in raw)
    hours = store.hours("app", T0)
    assert len(hours) == 24 and hours[0].at == T0 and hours[0].response_time == pytest.approx(0.01)


def test_one_targets_checks_are_found_through_an_index_on_the_target(tmp_path: Path) -> None:
    """Uptime and the status page's chart ask for one target over a span; with only the (at,
    target) index SQLite would scan every target's checks of the span (bench/web.py saw it)."""
    import sqlite3

    MonitorStore(tmp_path / "monitor.sqlite3").close()
    with sqlite3.connect(tmp_path / "monitor.sqlite3") as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT COUNT(*), SUM(1 - ok) FROM checks WHERE target = ? AND at >= ?",
                          ("app", 0.0)).fetchall()
    db.close()
    assert "USING COVERING INDEX checks_by_target" in str(plan) or "USING INDEX checks_by_target" in str(plan), plan
