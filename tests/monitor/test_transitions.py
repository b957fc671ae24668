"""The pure transition logic, driven by a fake clock: one check per minute."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from railguard.config import MaintenanceWindow
from railguard.monitor.maintenance import active_window, window_start
from railguard.monitor.state import DOWN, UNKNOWN, UP, CheckResult, Policy, TargetState, describe_duration, step

T0 = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


DEFAULT_POLICY, FRESH = Policy(), TargetState()


def run(pattern: str, policy: Policy = DEFAULT_POLICY, *, silenced_at: frozenset[int] | set[int] = frozenset(),
        state: TargetState = FRESH) -> tuple[TargetState, list[tuple[int, str, timedelta | None]]]:
    """Feed checks ('+' up, '-' down), one a minute; return the end state and (index, kind, outage) alerts."""
    alerts = []
    for index, mark in enumerate(pattern):
        check = CheckResult(mark == "+", T0 + index * MINUTE, "" if mark == "+" else "HTTP 503")
        state, sent = step(state, check, policy, silenced=index in silenced_at)
        alerts += [(index, alert.kind, alert.outage) for alert in sent]
    return state, alerts


def test_one_outage_gives_exactly_one_down_and_one_recovered_with_its_length() -> None:
    state, alerts = run("++----------++++")
    assert alerts == [(4, "down", None), (13, "recovered", timedelta(minutes=10))]
    assert state.status == UP and not state.down_alerted


@pytest.mark.parametrize("pattern", ["+--+--+--+", "+-+-+-+-", "--+--+"])
def test_failures_below_the_threshold_never_alert(pattern: str) -> None:
    state, alerts = run(pattern)
    assert alerts == [] and state.status == UP


def test_recovery_needs_the_success_threshold_in_a_row() -> None:
    _, alerts = run("+---+-+-++")
    assert [kind for _, kind, _ in alerts] == ["down", "recovered"]
    assert alerts[1][0] == 9


def test_a_target_down_from_the_start_is_reported() -> None:
    state, alerts = run("---")
    assert alerts == [(2, "down", None)] and state.status == DOWN


def test_a_first_success_marks_unknown_up_without_an_alert() -> None:
    state, alerts = run("+")
    assert (state.status, alerts) == (UP, [])
    assert TargetState().status == UNKNOWN


def test_reminders_repeat_at_the_interval_while_down() -> None:
    _, alerts = run("+" + "-" * 12, Policy(reminder=timedelta(minutes=4)))
    assert [(i, kind) for i, kind, _ in alerts] == [(3, "down"), (7, "reminder"), (11, "reminder")]
    assert alerts[1][2] == timedelta(minutes=6)


def test_a_maintenance_window_silences_an_outage_inside_it() -> None:
    _, alerts = run("+------++", silenced_at=set(range(0, 9)))
    assert alerts == []


def test_an_outage_still_going_when_the_window_ends_is_announced_then() -> None:
    _, alerts = run("+-----------++", silenced_at=set(range(0, 6)))
    assert [(i, kind) for i, kind, _ in alerts] == [(6, "down"), (13, "recovered")]
    assert alerts[1][2] == timedelta(minutes=11)


def test_a_recovery_inside_a_window_still_closes_an_announced_outage() -> None:
    _, alerts = run("+-----++", silenced_at={6, 7})
    assert [kind for _, kind, _ in alerts] == ["down", "recovered"]


def test_reminders_are_silenced_inside_a_window() -> None:
    _, alerts = run("+" + "-" * 12, Policy(reminder=timedelta(minutes=4)), silenced_at=set(range(5, 13)))
    assert [kind for _, kind, _ in alerts] == ["down"]


def test_the_state_survives_a_round_trip_through_its_dict() -> None:
    state, _ = run("++----")
    assert TargetState.from_dict(state.to_dict()) == state


def test_a_restored_state_does_not_announce_the_same_outage_again() -> None:
    state, first = run("+----")
    restored = TargetState.from_dict(state.to_dict())
    _, after_restart = run("---++", state=restored)
    assert [kind for _, kind, _ in first] == ["down"]
    assert [kind for _, kind, _ in after_restart] == ["recovered"]


@pytest.mark.parametrize("delta, text", [
    (timedelta(seconds=40), "40s"), (timedelta(minutes=5, seconds=12), "5m 12s"),
    (timedelta(hours=1, minutes=2), "1h 02m"), (timedelta(days=2, hours=3), "2d 03h"),
])
def test_outage_lengths_read_like_a_person_writes_them(delta: timedelta, text: str) -> None:
    assert describe_duration(delta) == text


SUNDAY_3AM = MaintenanceWindow(cron="0 3 * * sun", duration=timedelta(hours=1))


@pytest.mark.parametrize("now, inside", [
    (datetime(2026, 11, 29, 2, 59, 59, tzinfo=timezone.utc), False),
    (datetime(2026, 11, 29, 3, 0, 0, tzinfo=timezone.utc), True),
    (datetime(2026, 11, 29, 3, 59, 59, tzinfo=timezone.utc), True),
    (datetime(2026, 11, 29, 4, 0, 0, tzinfo=timezone.utc), False),
    (datetime(2026, 11, 28, 3, 30, 0, tzinfo=timezone.utc), False),  # a Saturday
])
def test_a_window_covers_its_start_up_to_start_plus_duration(now: datetime, inside: bool) -> None:
    assert (window_start(SUNDAY_3AM, now) is not None) is inside


def test_windows_are_read_in_the_configured_time_zone() -> None:
    # 03:00 in Madrid on 29 Nov 2026 is 02:00 UTC (CET, UTC+1).
    assert active_window([SUNDAY_3AM], datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc), "Europe/Madrid")
    assert not active_window([SUNDAY_3AM], datetime(2026, 11, 29, 3, 30, tzinfo=timezone.utc), "Europe/Madrid")
