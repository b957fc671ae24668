"""One way to write a duration for people (railguard.values.describe_duration): the status rows,
the status page and the monitor's outage messages all use it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from railguard.values import describe_duration


@pytest.mark.parametrize(("delta", "coarse", "precise"), [
    (timedelta(seconds=0), "0s", "0s"),
    (timedelta(seconds=45), "45s", "45s"),
    (timedelta(minutes=7, seconds=12), "7m", "7m 12s"),
    (timedelta(hours=2, minutes=5, seconds=59), "2h 5m", "2h 05m"),
    (timedelta(days=3, hours=4, minutes=30), "3d 4h", "3d 04h"),
    (timedelta(days=400), "400d 0h", "400d 00h"),
])
def test_two_largest_units_and_precise_pads_and_keeps_seconds(delta: timedelta, coarse: str, precise: str) -> None:
    assert describe_duration(delta) == coarse
    assert describe_duration(delta, precise=True) == precise


def test_a_moment_ahead_of_the_clock_reads_as_in_the_future() -> None:
    assert describe_duration(timedelta(seconds=-1)) == "in the future"
    assert describe_duration(timedelta(seconds=-1), precise=True) == "in the future"
