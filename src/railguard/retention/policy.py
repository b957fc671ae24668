"""The retention policy and its plan: which backups to keep, and which rule keeps each one.

The semantics are exactly those of ``restic forget`` (internal/restic/snapshot_policy.go), so a
user who knows restic can predict every decision, and a test checks this against the real
``restic`` binary:

* every rule looks at every backup (a backup kept by one rule still counts for the others);
* walking backups newest first, a rule keeps the newest backup of each of its last N distinct
  periods: hour, calendar day, ISO week (Monday to Sunday), month, year, all in the configured
  time zone; ``last`` keeps the N newest;
* ``within`` keeps every backup taken less than that long before the **newest** backup (not
  before now: a prune that runs late, or after a month without backups, removes nothing more).
  A backup dated after ``now`` (a clock that jumped ahead) does not move that window, as in
  restic: the newest backup *not in the future* anchors it;
* a backup is kept if any rule keeps it.

A *protected* backup (:mod:`railguard.backup.protection`, restic's ``--keep-tag``) is kept
whatever the rules say, and takes no part in them: a backup taken by hand before a risky change
must not take the day's place of the nightly one (restic would still count a tagged snapshot in
its buckets; we do not, so a protected backup never pushes another one out). The protections
are a parameter, and whether one is still in force is decided against ``now``.

Only good backups (verified, both files present) take part in the rules. A record that is not
good is never kept in place of a good one; what happens to it is decided here too:

* a *leftover* (a data file without its manifest, or a manifest without its data file) is what
  an interrupted backup or prune leaves behind; it cannot be restored, so it is removed once a
  newer good backup exists;
* a *damaged* backup (both files present, but the manifest is unreadable, unverified or names
  another file), and any manifest that does not parse, even alone, is left in place and
  reported: a human should look at it.

This module is pure: the clock and the time zone are parameters, nothing touches the disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

from railguard.backup.catalog import BackupRecord
from railguard.backup.protection import Protection
from railguard.config import RetentionSettings
from railguard.values import Within

PeriodKey: TypeAlias = tuple[int, ...]


def _hour(local: datetime) -> PeriodKey:
    return (local.year, local.month, local.day, local.hour)


def _day(local: datetime) -> PeriodKey:
    return (local.year, local.month, local.day)


def _iso_week(local: datetime) -> PeriodKey:
    year, week, _ = local.isocalendar()
    return (year, week)


def _month(local: datetime) -> PeriodKey:
    return (local.year, local.month)


def _year(local: datetime) -> PeriodKey:
    return (local.year,)


@dataclass(frozen=True)
class Rule:
    name: str  # as in the reasons and the flags: "daily" → "daily #3", --keep-daily
    period: Callable[[datetime], PeriodKey] | None  # None: every backup is its own period (last)


RULES = (
    Rule("last", None),
    Rule("hourly", _hour),
    Rule("daily", _day),
    Rule("weekly", _iso_week),
    Rule("monthly", _month),
    Rule("yearly", _year),
)


@dataclass(frozen=True)
class Policy:
    """How many of each period to keep; 0 means the rule is off."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Within | None = None

    def __post_init__(self) -> None:
        for rule in RULES:
            if getattr(self, rule.name) < 0:
                raise ValueError(f"keep-{rule.name} cannot be negative")

    @classmethod
    def from_settings(cls, settings: RetentionSettings) -> Policy:
        """From the ``[apps.NAME.retention]`` table (``keep_daily = 7`` ...).

        A rule the table leaves out (or sets to 0) is off. Only a table that sets no rule at
        all gets the default, :data:`DEFAULT_POLICY` (7 daily, 4 weekly): ``keep_monthly = 12``
        alone keeps 12 monthly and nothing else, as the docs say.
        """
        given = {rule.name: getattr(settings, f"keep_{rule.name}") for rule in RULES}
        within = settings.keep_within
        if within is None and all(value is None for value in given.values()):
            return DEFAULT_POLICY
        return cls(**{name: value or 0 for name, value in given.items()},
                   within=Within.parse(within) if within else None)

    def is_empty(self) -> bool:
        return not any(getattr(self, rule.name) for rule in RULES) and self.within is None

    def __str__(self) -> str:
        counts = [f"{getattr(self, rule.name)} {rule.name}" for rule in RULES if getattr(self, rule.name)]
        if self.within is not None:
            counts.append(f"all within {self.within} of the newest")
        return "keep " + ", ".join(counts) if counts else "keep nothing (empty policy)"

    def as_dict(self) -> dict[str, int | str | None]:
        """Every rule, off ones included (0, or None for within): ``{"keep_daily": 7, ...}``."""
        return {**{f"keep_{rule.name}": getattr(self, rule.name) for rule in RULES},
                "keep_within": str(self.within) if self.within is not None else None}

    def flags(self) -> list[str]:
        """The same policy as command-line flags (ours and restic's are the same)."""
        flags = []
        for rule in RULES:
            if getattr(self, rule.name):
                flags += [f"--keep-{rule.name}", str(getattr(self, rule.name))]
        if self.within is not None:
            flags += ["--keep-within", str(self.within)]
        return flags


#: The plan's policy, for a retention table that sets no rule at all.
DEFAULT_POLICY = Policy(daily=7, weekly=4)

#: Where the policy in effect came from: prune says it on its first line and in its --json.
PolicyOrigin = Literal["flags", "configuration", "default"]


def policy_in_effect(rules: Mapping[str, int | None], within: Within | None,
                     settings: RetentionSettings) -> tuple[Policy, PolicyOrigin]:
    """The policy a prune applies, and where it came from: any rule given on the command line
    (``rules`` by name, ``last`` to ``yearly``, None when not given; ``within``) replaces the
    whole configured policy, as on restic's command line; else the ``[apps.NAME.retention]``
    table; else, for a table that sets no rule, the default."""
    if within is not None or any(value is not None for value in rules.values()):
        return Policy(**{rule: value or 0 for rule, value in rules.items()}, within=within), "flags"
    policy = Policy.from_settings(settings)
    # from_settings returns this very object only for a table that sets no rule.
    return policy, "default" if policy is DEFAULT_POLICY else "configuration"

Action = Literal["keep", "remove", "leave"]


@dataclass(frozen=True)
class Decision:
    backup: BackupRecord
    action: Action
    #: Why: the rules that keep it ("daily #3", "weekly #1", "within 2d"), or why it goes or stays.
    reasons: tuple[str, ...]
    #: The protection in force that keeps it (then no rule counted it), or None.
    protection: Protection | None = None

    @property
    def name(self) -> str:
        return self.backup.name


@dataclass
class Plan:
    policy: Policy
    now: datetime
    tz: str
    #: One decision per backup, newest first.
    decisions: list[Decision] = field(default_factory=list)

    def _where(self, action: Action) -> list[Decision]:
        return [decision for decision in self.decisions if decision.action == action]

    @property
    def keep(self) -> list[Decision]:
        return self._where("keep")

    @property
    def remove(self) -> list[Decision]:
        return self._where("remove")

    @property
    def leave(self) -> list[Decision]:
        """Damaged or unexplained records that prune does not touch (a human should look)."""
        return self._where("leave")

    @property
    def protected(self) -> list[Decision]:
        """Kept by a protection in force, whatever the rules say."""
        return [decision for decision in self.decisions if decision.protection is not None]

    @property
    def newest_good(self) -> BackupRecord | None:
        return next((d.backup for d in self.decisions if d.backup.is_good), None)


NOT_KEPT = "not kept by any rule"


def apply_policy(backups: Sequence[BackupRecord], policy: Policy, *, now: datetime, tz: str,
                 protected: Mapping[str, Protection] | None = None) -> Plan:
    """Decide, for every backup, whether to keep it, remove it or leave it alone.

    ``now`` decides which ``protected`` backups (by name) are still protected, and otherwise
    only matters for backups dated in the future: they never anchor the ``within`` window
    (restic's ``findLatestTimestamp``). Raises ValueError for an empty policy: with no rule
    every backup would go, which is never what anybody meant.
    """
    if policy.is_empty():
        raise ValueError("the retention policy is empty: it would remove every backup")
    zone = ZoneInfo(tz)
    in_force = {name: protection for name, protection in (protected or {}).items() if protection.active(now)}
    # Read once: a record without a manifest takes its time from its file's mtime.
    taken = {id(backup): backup.created_at for backup in backups}
    ordered = sorted(backups, key=lambda b: (taken[id(b)], b.id), reverse=True)
    good = [backup for backup in ordered if backup.is_good and backup.name not in in_force]
    reasons: dict[str, list[str]] = {backup.name: [] for backup in good}

    cutoff: datetime | None = None
    if policy.within is not None and good:
        anchor = next((taken[id(backup)] for backup in good if taken[id(backup)] < now), None)
        # With every backup in the future restic anchors at the zero time: all are within.
        cutoff = policy.within.cutoff(anchor, zone) if anchor is not None else datetime.min.replace(tzinfo=timezone.utc)
    for rule in RULES:
        budget = getattr(policy, rule.name)
        if not budget:
            continue
        counted = 0
        last_period: PeriodKey | None = None
        for index, backup in enumerate(good):
            if counted == budget:
                break
            period = (index,) if rule.period is None else rule.period(taken[id(backup)].astimezone(zone))
            if period != last_period:
                counted += 1
                last_period = period
                reasons[backup.name].append(f"{rule.name} #{counted}")
    if cutoff is not None:
        for backup in good:
            if taken[id(backup)] > cutoff:
                reasons[backup.name].insert(0, f"within {policy.within}")

    all_good = [backup for backup in ordered if backup.is_good]
    newest_good = taken[id(all_good[0])] if all_good else None
    plan = Plan(policy, now, tz)
    for backup in ordered:
        protection = in_force.get(backup.name)
        if protection is not None:
            action: Action = "keep" if backup.is_good else "leave"
            plan.decisions.append(Decision(backup, action, (protection.describe(),), protection))
        elif backup.is_good:
            why = reasons[backup.name]
            plan.decisions.append(Decision(backup, "keep" if why else "remove", tuple(why) or (NOT_KEPT,)))
        elif _is_leftover(backup) and newest_good is not None and taken[id(backup)] < newest_good:
            reason = f"leftover ({backup.status}), older than the newest good backup"
            plan.decisions.append(Decision(backup, "remove", (reason,)))
        else:
            plan.decisions.append(Decision(backup, "leave", (f"{backup.status}: left for you to inspect",)))
    return plan


def _is_leftover(backup: BackupRecord) -> bool:
    """Exactly one of the two files exists: what an interrupted backup or prune leaves behind.
    A manifest that does not parse is never a leftover: nobody can say what it vouched for."""
    return (backup.data_path is None) != (backup.manifest_path is None) and not backup.has_bad_manifest
