"""What other processes tell the monitor: deploy windows and pauses.

A deploy (``railguard deploy``, ``release``, ``rollback``, the gate) and ``railguard monitor
pause`` run in other processes than the monitor, so what they say goes into the monitor's own
SQLite file (:mod:`railguard.monitor.store`, tables ``deploy_windows`` and ``pauses``), and the
monitor reads it back at the start of every round. They open the file with a short busy
timeout (:data:`CONTROL_BUSY_TIMEOUT`): the monitor holds its write lock only while it saves a
round, and a deploy must never wait long on the monitor.

The rules, each a pure function of the records and ``now`` (the tests pin them):

* A **deploy window** is open from the last pre-deploy step to the close after the smoke check,
  and never past ``until``: a deploy that crashed between the two never mutes the monitor for
  ever. While it is open, the app's targets are silenced like in a maintenance window (the
  state machine still records every check; an incident that starts then is marked "during
  deploy N").
* A DOWN alert within ``deploy_grace`` after a window ended (closed, or run out at ``until``)
  names that deploy, how long after it came, and the rollback command.
* A **pause** silences the named target (or every target of the named app) from ``since`` to
  ``until``, or until ``railguard monitor resume`` when it has no ``until``. Checks go on and
  are recorded while paused: uptime stays true, and a target still down at the resume is
  announced at its next failed check, as at the end of a maintenance window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

#: How long a deploy or ``monitor pause`` waits for the monitor's write lock (a round's save
#: takes milliseconds; a busy file past this is an error, never a hung deploy).
CONTROL_BUSY_TIMEOUT = timedelta(seconds=2)


@dataclass(frozen=True)
class DeployWindow:
    """One deploy of ``app``: the monitor holds its DOWN alerts from ``opened_at`` to the close."""

    app: str
    deploy_id: int
    commit: str | None
    #: ``deploy``, ``release`` or ``rollback`` (the deploy history's kind).
    kind: str
    opened_at: datetime
    #: The latest the window may stay open (a crashed deploy never closes it).
    until: datetime
    closed_at: datetime | None = None

    @property
    def ends_at(self) -> datetime:
        return min(self.closed_at, self.until) if self.closed_at is not None else self.until

    def is_open(self, now: datetime) -> bool:
        return self.opened_at <= now < self.ends_at

    def describe(self) -> str:
        """``deploy 42 of 1a2b3c4d5e6f (release)``."""
        commit = self.commit[:12] if self.commit else "an unknown commit"
        return f"deploy {self.deploy_id} of {commit} ({self.kind})"

    def as_dict(self) -> dict[str, Any]:
        return {"app": self.app, "deploy_id": self.deploy_id, "commit": self.commit, "kind": self.kind,
                "opened_at": self.opened_at, "until": self.until, "closed_at": self.closed_at}


@dataclass(frozen=True)
class Pause:
    """``railguard monitor pause NAME``: no alert for NAME from ``since`` to ``until`` (None:
    until ``railguard monitor resume``)."""

    name: str
    since: datetime
    until: datetime | None = None
    reason: str | None = None

    def is_active(self, now: datetime) -> bool:
        return self.since <= now and (self.until is None or now < self.until)

    def describe(self, tz: str = "UTC") -> str:
        """``paused until 2026-12-02 15:00 UTC: migrating the disk`` (or ``until resumed``)."""
        until = "until resumed" if self.until is None else f"until {_clock(self.until, tz)}"
        return f"paused {until}" + (f": {self.reason}" if self.reason else "")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "since": self.since, "until": self.until, "reason": self.reason}


@dataclass(frozen=True)
class Quiet:
    """Why one target's alerts are held this round (both None: they are not)."""

    deploy: DeployWindow | None = None
    pause: Pause | None = None

    @property
    def silenced(self) -> bool:
        return self.deploy is not None or self.pause is not None


def open_window(windows: Iterable[DeployWindow], app: str | None, now: datetime) -> DeployWindow | None:
    """The deploy of ``app`` whose window is open at ``now`` (the newest, if several are)."""
    if app is None:
        return None
    found = [window for window in windows if window.app == app and window.is_open(now)]
    return max(found, key=lambda window: window.opened_at, default=None)


def recent_deploy(windows: Iterable[DeployWindow], app: str | None, now: datetime,
                  grace: timedelta) -> DeployWindow | None:
    """The newest deploy of ``app`` whose window ended at most ``grace`` before ``now``."""
    if app is None:
        return None
    found = [window for window in windows
             if window.app == app and window.ends_at <= now and now - window.ends_at <= grace]
    return max(found, key=lambda window: window.ends_at, default=None)


def active_pause(pauses: Iterable[Pause], names: Iterable[str | None], now: datetime) -> Pause | None:
    """The pause in force at ``now`` for any of ``names`` (a target's name and its app's)."""
    wanted = {name for name in names if name is not None}
    return next((pause for pause in pauses if pause.name in wanted and pause.is_active(now)), None)


def after_deploy(window: DeployWindow, at: datetime) -> str:
    """``12 minutes after deploy 42 of 1a2b3c4d5e6f (release)``: how a DOWN alert names it."""
    minutes = int((at - window.ends_at).total_seconds() // 60)
    if minutes < 1:
        when = "less than a minute"
    else:
        when = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{when} after {window.describe()}"


def _clock(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")
