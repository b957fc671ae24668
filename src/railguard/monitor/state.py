"""The monitor's transition logic: a pure function of (state, check result, policy, silenced).

No clock is read here; every time comes from the check. Alerting follows Gatus and Uptime
Kuma (shared/reference/monitoring.md): a target turns DOWN after ``failure_threshold``
consecutive failures and back UP after ``success_threshold`` consecutive successes; only
those transitions alert, so a flapping check cannot cause a storm.

Rules that the tests pin:

* UNKNOWN (never checked) becomes UP on its first success without an alert, and DOWN like
  UP does, so a target already down when the monitor starts is reported.
* DOWN is announced once per outage (``down_alerted``); a restart reads the state back, so
  it does not announce the same outage again.
* While a maintenance window is active (``silenced``) no DOWN and no reminder is sent; an
  outage still going on when the window ends is announced at the next failed check.
* RECOVERED is sent only for an outage that was announced, and is sent even inside a
  maintenance window: it closes an alert a person has already seen.
* The outage lasts from the first failed check of the streak to the first successful check
  of the recovery streak.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from railguard import values

UNKNOWN, UP, DOWN = "unknown", "up", "down"


@dataclass(frozen=True)
class Policy:
    failure_threshold: int = 3
    success_threshold: int = 2
    reminder: timedelta | None = None


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    at: datetime
    #: Why the check failed ("HTTP 503", "timed out after 10s", "body lacks 'ok'").
    reason: str = ""
    response_time: float | None = None


@dataclass(frozen=True)
class TargetState:
    status: str = UNKNOWN
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    #: First check of the current streak of failures (or of successes).
    streak_started_at: datetime | None = None
    #: When the target went DOWN: the first failed check of the outage.
    down_since: datetime | None = None
    down_alerted: bool = False
    last_alert_at: datetime | None = None
    last_check_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure_reason: str | None = None
    last_ok: bool | None = None
    last_response_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value.isoformat() if isinstance(value, datetime) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetState:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in fields:
                continue
            if key.endswith("_at") or key == "down_since":
                value = datetime.fromisoformat(value) if value else None
            values[key] = value
        return cls(**values)


@dataclass(frozen=True)
class Alert:
    kind: Literal["down", "recovered", "reminder"]
    at: datetime
    reason: str = ""
    #: For "recovered" and "reminder": how long the target has been (was) down.
    outage: timedelta | None = None
    down_since: datetime | None = None


def step(state: TargetState, check: CheckResult, policy: Policy, *, silenced: bool = False
         ) -> tuple[TargetState, list[Alert]]:
    """The state after ``check``, and the alerts to send (none, or one)."""
    if check.ok:
        return _after_success(state, check, policy)
    return _after_failure(state, check, policy, silenced)


def _after_success(state: TargetState, check: CheckResult, policy: Policy) -> tuple[TargetState, list[Alert]]:
    streak_start = check.at if state.consecutive_successes == 0 else state.streak_started_at
    successes = state.consecutive_successes + 1
    new = dataclasses.replace(state, consecutive_successes=successes, consecutive_failures=0,
                              streak_started_at=streak_start, last_check_at=check.at, last_ok=True,
                              last_response_time=check.response_time)
    if state.status == UNKNOWN:
        return dataclasses.replace(new, status=UP), []
    if state.status == DOWN and successes >= policy.success_threshold:
        alerts: list[Alert] = []
        if state.down_alerted:
            since = state.down_since or streak_start
            assert since is not None and streak_start is not None
            alerts.append(Alert("recovered", check.at, outage=streak_start - since, down_since=since))
        return dataclasses.replace(new, status=UP, down_since=None, down_alerted=False), alerts
    return new, []


def _after_failure(state: TargetState, check: CheckResult, policy: Policy, silenced: bool
                   ) -> tuple[TargetState, list[Alert]]:
    streak_start = check.at if state.consecutive_failures == 0 else state.streak_started_at
    failures = state.consecutive_failures + 1
    new = dataclasses.replace(state, consecutive_failures=failures, consecutive_successes=0,
                              streak_started_at=streak_start, last_check_at=check.at, last_ok=False,
                              last_failure_at=check.at, last_failure_reason=check.reason,
                              last_response_time=check.response_time)
    if new.status != DOWN and failures >= policy.failure_threshold:
        new = dataclasses.replace(new, status=DOWN, down_since=streak_start, down_alerted=False)
    if new.status != DOWN or silenced:
        return new, []
    if not new.down_alerted:
        alert = Alert("down", check.at, reason=check.reason, down_since=new.down_since)
        return dataclasses.replace(new, down_alerted=True, last_alert_at=check.at), [alert]
    if policy.reminder and new.last_alert_at is not None and check.at - new.last_alert_at >= policy.reminder:
        assert new.down_since is not None
        alert = Alert("reminder", check.at, reason=check.reason, outage=check.at - new.down_since,
                      down_since=new.down_since)
        return dataclasses.replace(new, last_alert_at=check.at), [alert]
    return new, []


def describe_duration(delta: timedelta) -> str:
    """``1h 02m``, ``5m 12s``, ``40s``: how an outage reads in a message."""
    return values.describe_duration(delta, precise=True)
