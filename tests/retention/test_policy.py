"""The pure retention core: one fixed, commented timeline, table-driven, with the invariants
checked on every row; then the rules that restic has no opinion on (records that are not good)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from retention.helpers import record_at

from railguard.backup.protection import Protection
from railguard.retention import Policy, Within, apply_policy
from railguard.retention.policy import NOT_KEPT

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)  # a Friday, ISO week 48

#: The fixed timeline, newest first, in UTC. Numbers are referred to by the table below.
TIMELINE = {
    1: datetime(2026, 11, 27, 3, 30, tzinfo=UTC),   # Fri, week 48: the newest backup
    2: datetime(2026, 11, 26, 15, 0, tzinfo=UTC),   # Thu, a manual backup in the afternoon...
    3: datetime(2026, 11, 26, 3, 30, tzinfo=UTC),   # ...so the nightly one of the same day is not "daily"
    4: datetime(2026, 11, 25, 3, 30, tzinfo=UTC),   # Wed; exactly 2 days before #1 (the within-2d edge)
    5: datetime(2026, 11, 23, 3, 30, tzinfo=UTC),   # Mon: first day of week 48 (24th: no backup)
    6: datetime(2026, 11, 22, 3, 30, tzinfo=UTC),   # Sun: last day of week 47
    7: datetime(2026, 11, 20, 3, 30, tzinfo=UTC),   # Fri, week 47
    8: datetime(2026, 11, 12, 3, 30, tzinfo=UTC),   # Thu, week 46 (week 45 has no backup)
    9: datetime(2026, 11, 1, 3, 30, tzinfo=UTC),    # Sun, week 44, November
    10: datetime(2026, 10, 31, 3, 30, tzinfo=UTC),  # Sat, week 44 too, but October
    11: datetime(2026, 9, 30, 3, 30, tzinfo=UTC),   # Wed, September, week 40
    12: datetime(2026, 1, 1, 3, 30, tzinfo=UTC),    # Thu: ISO week 1 of 2026...
    13: datetime(2025, 12, 29, 3, 30, tzinfo=UTC),  # Mon: ...which starts here, in December 2025
    14: datetime(2025, 12, 28, 3, 30, tzinfo=UTC),  # Sun: ISO week 52 of 2025
    15: datetime(2025, 6, 15, 3, 30, tzinfo=UTC),   # mid 2025
    16: datetime(2024, 3, 1, 3, 30, tzinfo=UTC),    # the oldest, 2024
}

RECORDS = {number: record_at(moment) for number, moment in TIMELINE.items()}

TABLE = [
    # policy, numbers kept
    (Policy(last=3), {1, 2, 3}),
    (Policy(hourly=2), {1, 2}),
    (Policy(daily=3), {1, 2, 4}),                                # #3 shares the 26th with #2
    (Policy(weekly=4), {1, 6, 8, 9}),                            # newest of weeks 48, 47, 46, 44
    (Policy(daily=7, weekly=4), {1, 2, 4, 5, 6, 7, 8, 9}),       # the default: the rules overlap
    (Policy(weekly=10), {1, 6, 8, 9, 11, 12, 14, 15, 16}),       # #13 is in #12's ISO week; 9 weeks exist
    (Policy(monthly=3), {1, 10, 11}),                            # November, October, September
    (Policy(yearly=3), {1, 13, 16}),                             # calendar years, not ISO years
    (Policy(monthly=2, yearly=2), {1, 10, 13}),
    (Policy(within=Within(days=2)), {1, 2, 3}),                  # #4 is exactly 2 days old: not within
    (Policy(within=Within(months=1)), set(range(1, 11))),        # back to 27 October
    (Policy(within=Within(years=1)), set(range(1, 15))),         # back to 27 November 2025
    (Policy(last=1, within=Within(hours=12)), {1}),              # #2 is 12.5 hours older
    (Policy(last=100), set(range(1, 17))),                       # more than there are: keep all
]


@pytest.mark.parametrize(("policy", "kept"), TABLE, ids=[str(policy) for policy, _ in TABLE])
def test_policy_keeps_exactly_the_expected_backups(policy: Policy, kept: set[int]) -> None:
    plan = apply_policy(list(RECORDS.values()), policy, now=NOW, tz="UTC")
    number = {record.name: n for n, record in RECORDS.items()}
    kept_numbers = {number[d.name] for d in plan.keep}
    removed_numbers = {number[d.name] for d in plan.remove}
    assert kept_numbers == kept
    # Invariants on every row: everything is decided once, the newest always stays, every kept
    # backup says why, every removed one says it was not kept.
    assert kept_numbers | removed_numbers == set(RECORDS) and not kept_numbers & removed_numbers
    assert not plan.leave
    assert [d.name for d in plan.decisions] == [RECORDS[n].name for n in sorted(RECORDS)]  # newest first
    assert 1 in kept_numbers
    assert all(d.reasons and NOT_KEPT not in d.reasons for d in plan.keep)
    assert all(d.reasons == (NOT_KEPT,) for d in plan.remove)


def test_each_kept_backup_names_every_rule_that_keeps_it_and_its_rank() -> None:
    plan = apply_policy(list(RECORDS.values()), Policy(daily=7, weekly=4), now=NOW, tz="UTC")
    reasons = {d.name: d.reasons for d in plan.keep}
    assert reasons[RECORDS[1].name] == ("daily #1", "weekly #1")
    assert reasons[RECORDS[6].name] == ("daily #5", "weekly #2")
    assert reasons[RECORDS[8].name] == ("daily #7", "weekly #3")
    assert reasons[RECORDS[9].name] == ("weekly #4",)
    assert reasons[RECORDS[2].name] == ("daily #2",)


def test_within_reason_comes_first_and_names_the_duration() -> None:
    plan = apply_policy(list(RECORDS.values()), Policy(last=1, within=Within(days=2)), now=NOW, tz="UTC")
    assert plan.keep[0].reasons == ("within 2d", "last #1")


def test_days_and_weeks_are_counted_in_the_configured_time_zone() -> None:
    # 23:30 UTC on the 26th is 00:30 on the 27th in Madrid: the same local day as the 03:30 backup.
    late = record_at(datetime(2026, 11, 26, 23, 30, tzinfo=UTC), "Europe/Madrid")
    early = record_at(datetime(2026, 11, 26, 21, 0, tzinfo=UTC), "Europe/Madrid")
    newest = record_at(datetime(2026, 11, 27, 3, 30, tzinfo=UTC), "Europe/Madrid")
    in_utc = apply_policy([early, late, newest], Policy(daily=2), now=NOW, tz="UTC")
    in_madrid = apply_policy([early, late, newest], Policy(daily=2), now=NOW, tz="Europe/Madrid")
    assert {d.name for d in in_utc.keep} == {newest.name, late.name}
    assert {d.name for d in in_madrid.keep} == {newest.name, early.name}


def test_a_backup_dated_in_the_future_does_not_anchor_keep_within() -> None:
    skewed = record_at(datetime(2027, 3, 1, tzinfo=UTC), seq=9)  # a clock that jumped ahead
    records = [*RECORDS.values(), skewed]
    plan = apply_policy(records, Policy(within=Within(days=2)), now=NOW, tz="UTC")
    assert {d.name for d in plan.keep} == {skewed.name, RECORDS[1].name, RECORDS[2].name, RECORDS[3].name}


def test_calendar_steps_roll_over_like_restic() -> None:
    # 31 March minus one month is "31 February", which Go (and so restic) normalises to 3 March.
    newest = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
    assert Within(months=1).cutoff(newest, ZoneInfo("UTC")) == datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    assert Within(years=1, days=1).cutoff(newest, ZoneInfo("UTC")) == datetime(2025, 3, 30, 12, 0, tzinfo=UTC)
    assert Within(hours=36).cutoff(newest, ZoneInfo("UTC")) == datetime(2026, 3, 30, 0, 0, tzinfo=UTC)


def test_calendar_days_keep_the_local_clock_across_daylight_saving() -> None:
    # Madrid moved to summer time on 29 March 2026: one calendar day back is 23 hours earlier.
    newest = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # 14:00 CEST
    assert Within(days=1).cutoff(newest, ZoneInfo("Europe/Madrid")) == datetime(2026, 3, 28, 13, 0, tzinfo=UTC)


# --- records that are not good ------------------------------------------------------------

def test_a_backup_that_is_not_good_never_counts_for_a_rule() -> None:
    good = record_at(datetime(2026, 11, 26, 3, 30, tzinfo=UTC))
    unverified = record_at(datetime(2026, 11, 26, 15, 0, tzinfo=UTC), status="not verified")
    newest = record_at(datetime(2026, 11, 27, 3, 30, tzinfo=UTC))
    plan = apply_policy([good, unverified, newest], Policy(daily=2), now=NOW, tz="UTC")
    # The unverified backup is the newest of the 26th, but the good one is kept for that day.
    assert {d.name for d in plan.keep} == {newest.name, good.name}
    assert [d.name for d in plan.leave] == [unverified.name]


def test_leftovers_older_than_the_newest_good_backup_are_removed_newer_ones_left(tmp_path: Path) -> None:
    orphan_data = record_at(datetime(2026, 11, 20, 3, 30, tzinfo=UTC), status="incomplete: no manifest",
                            manifest=False, directory=tmp_path)
    orphan_manifest = record_at(datetime(2026, 11, 21, 3, 30, tzinfo=UTC), status="missing data file", data=False)
    newest_good = record_at(datetime(2026, 11, 26, 3, 30, tzinfo=UTC))
    in_progress = record_at(datetime(2026, 11, 27, 3, 30, tzinfo=UTC), status="incomplete: no manifest",
                            manifest=False, directory=tmp_path)
    plan = apply_policy([orphan_data, orphan_manifest, newest_good, in_progress], Policy(daily=7), now=NOW,
                        tz="UTC")
    assert {d.name for d in plan.remove} == {orphan_data.name, orphan_manifest.name}
    assert all(d.reasons[0].startswith("leftover (") for d in plan.remove)
    assert [d.name for d in plan.leave] == [in_progress.name]
    assert [d.name for d in plan.keep] == [newest_good.name]


def test_damaged_backups_are_left_for_a_human_whatever_their_age() -> None:
    damaged = record_at(datetime(2025, 1, 1, tzinfo=UTC), status="unreadable manifest")
    newest = record_at(datetime(2026, 11, 27, 3, 30, tzinfo=UTC))
    plan = apply_policy([damaged, newest], Policy(last=1), now=NOW, tz="UTC")
    assert [(d.name, d.action) for d in plan.decisions] == [(newest.name, "keep"), (damaged.name, "leave")]
    assert "unreadable manifest" in plan.leave[0].reasons[0]


def test_without_any_good_backup_nothing_is_removed(tmp_path: Path) -> None:
    leftovers = [record_at(datetime(2026, 11, day, tzinfo=UTC), status="incomplete: no manifest", manifest=False,
                           directory=tmp_path) for day in (20, 21, 22)]
    plan = apply_policy(leftovers, Policy(last=1), now=NOW, tz="UTC")
    assert not plan.remove and not plan.keep and len(plan.leave) == 3


# --- the policy value -----------------------------------------------------------------------

def test_policy_reads_like_the_configuration() -> None:
    assert str(Policy(daily=7, weekly=4)) == "keep 7 daily, 4 weekly"
    assert str(Policy(last=2, within=Within(years=1, months=6))) == "keep 2 last, all within 1y6m of the newest"
    assert Policy().is_empty() and not Policy(yearly=1).is_empty() and not Policy(within=Within(hours=1)).is_empty()


def test_an_empty_policy_is_refused_by_the_core() -> None:
    with pytest.raises(ValueError, match="empty"):
        apply_policy(list(RECORDS.values()), Policy(), now=NOW, tz="UTC")


@pytest.mark.parametrize("text", ["", "5x", "2", "d", "1.5d", "2d2d", "0d", "0y0m", "-1d", "2 weeks"])
def test_within_rejects_what_restic_would_not_mean(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected a duration|longer than zero"):
        Within.parse(text)


@pytest.mark.parametrize(("text", "within"), [
    ("2d", Within(days=2)), ("1y6m", Within(years=1, months=6)), ("36h", Within(hours=36)),
    (" 1y 2m 3d 4h ", Within(1, 2, 3, 4)),
])
def test_within_parses_restic_durations(text: str, within: Within) -> None:
    assert Within.parse(text) == within
    assert Within.parse(str(within)) == within


# --- protected backups (restic's --keep-tag, but taking no part in the rules) ---------------

def _protection(number: int, *, until: datetime | None = None) -> dict[str, Protection]:
    name = RECORDS[number].name
    return {name: Protection(name, "before the migration", until)}


def test_a_protected_manual_backup_leaves_the_days_slot_to_the_nightly_one() -> None:
    # #2 is the manual backup of the 26th: without protection it is "daily #2" and the nightly #3
    # goes (the TABLE row above); protected, it is kept and the nightly one counts for the day.
    plan = apply_policy(list(RECORDS.values()), Policy(daily=3), now=NOW, tz="UTC", protected=_protection(2))
    kept = {number for number, record in RECORDS.items() if record.name in {d.name for d in plan.keep}}
    assert kept == {1, 2, 3, 4}
    assert len(plan.keep) + len(plan.remove) + len(plan.leave) == len(RECORDS)
    decision = next(d for d in plan.decisions if d.name == RECORDS[2].name)
    assert decision.reasons == ("protected: before the migration (until unkept)",)
    assert [d.name for d in plan.protected] == [RECORDS[2].name]
    nightly = next(d for d in plan.decisions if d.name == RECORDS[3].name)
    assert nightly.reasons == ("daily #2",) and nightly.protection is None


def test_a_protected_backup_is_never_removed_whatever_its_age() -> None:
    plan = apply_policy(list(RECORDS.values()), Policy(last=1), now=NOW, tz="UTC", protected=_protection(16))
    assert {d.name for d in plan.keep} == {RECORDS[1].name, RECORDS[16].name}
    assert RECORDS[16].name not in {d.name for d in plan.remove}


def test_a_protected_newest_backup_does_not_anchor_or_fill_a_rule() -> None:
    plan = apply_policy(list(RECORDS.values()), Policy(last=1), now=NOW, tz="UTC", protected=_protection(1))
    assert [(d.name, d.reasons) for d in plan.keep] == [
        (RECORDS[1].name, ("protected: before the migration (until unkept)",)), (RECORDS[2].name, ("last #1",))]


def test_an_expired_protection_protects_nothing() -> None:
    expired = _protection(16, until=NOW - timedelta(seconds=1))
    plan = apply_policy(list(RECORDS.values()), Policy(last=1), now=NOW, tz="UTC", protected=expired)
    assert RECORDS[16].name in {d.name for d in plan.remove} and not plan.protected
    running = _protection(16, until=NOW + timedelta(seconds=1))
    plan = apply_policy(list(RECORDS.values()), Policy(last=1), now=NOW, tz="UTC", protected=running)
    assert RECORDS[16].name in {d.name for d in plan.keep}
    assert plan.protected[0].reasons == ("protected: before the migration (until 2026-11-27 04:00 UTC)",)


NO_FLAGS = {"last": None, "hourly": None, "daily": None, "weekly": None, "monthly": None, "yearly": None}


@pytest.mark.parametrize(("flags", "within", "table", "expected", "origin"), [
    ({}, None, {}, "keep 7 daily, 4 weekly", "default"),
    ({}, None, {"keep_daily": 3}, "keep 3 daily", "configuration"),
    # Any flag replaces the whole configured policy, as on restic's command line.
    ({"last": 2}, None, {"keep_daily": 3, "keep_weekly": 4}, "keep 2 last", "flags"),
    ({"daily": 0}, None, {"keep_daily": 3}, "", "flags"),
    ({}, "2d", {"keep_daily": 3}, "keep all within 2d of the newest", "flags"),
])
def test_the_policy_in_effect_is_the_flags_else_the_table_else_the_default(flags, within, table, expected,
                                                                            origin) -> None:
    from railguard.config import RetentionSettings
    from railguard.retention.policy import policy_in_effect

    policy, came_from = policy_in_effect({**NO_FLAGS, **flags}, Within.parse(within) if within else None,
                                         RetentionSettings(**table))
    assert (came_from, str(policy) if not policy.is_empty() else "") == (origin, expected)
