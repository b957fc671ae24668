"""``railguard monitor pause|resume`` and the daemon's ``POST /api/monitor/NAME/pause|resume``:
one library call each, so the command and the HTTP API check the same things in the same words.

A name is an app (every target that watches it is paused) or one monitor target; anything else
is refused, so a typo never leaves the real target alerting while its owner thinks it paused.
The pause itself is a row in the monitor's store (:func:`railguard.monitor.store.pause_target`),
read by the running monitor at its next round: no signal to the monitor, no restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from railguard.config import Settings
from railguard.errors import ConfigError, NotFound, UsageError
from railguard.monitor.control import Pause
from railguard.monitor.targets import targets_from_settings
from railguard.monitor.store import pause_target, resume_target

#: A reason is one line someone reads in ``monitor list``; longer text belongs in a ticket.
MAX_REASON = 200


def pausable_names(settings: Settings) -> list[str]:
    """Every name a pause may take: the apps, and each monitor target."""
    try:
        targets = targets_from_settings(settings)
    except ConfigError:  # no target at all: only the apps (a pause for later is still a pause)
        targets = []
    return sorted(set(settings.apps) | {target.name for target in targets})


def pause_monitoring(settings: Settings, name: str, *, now: datetime, length: timedelta | None = None,
                     reason: str | None = None) -> Pause:
    """Hold every alert of ``name`` for ``length`` (None: until :func:`resume_monitoring`)."""
    _check_name(settings, name)
    if length is not None and length <= timedelta(0):
        raise UsageError(f"a pause must last longer than 0s, not {length.total_seconds():g}s",
                         hint="Give --for a duration such as 30m or 2h, or leave it out to pause until resumed")
    if reason is not None:
        reason = reason.strip() or None
    if reason is not None and ("\n" in reason or "\r" in reason or len(reason) > MAX_REASON):
        raise UsageError(f"the reason must be one line of at most {MAX_REASON} characters",
                         hint="Say in a few words why, such as --reason 'moving the disk'")
    return pause_target(settings.state_dir, name, now=now, until=None if length is None else now + length,
                        reason=reason)


def resume_monitoring(settings: Settings, name: str, *, now: datetime) -> Pause | None:
    """End the pause of ``name``; the pause that was in force, or None when it was not paused."""
    _check_name(settings, name)
    return resume_target(settings.state_dir, name, now=now)


def _check_name(settings: Settings, name: str) -> None:
    names = pausable_names(settings)
    if name not in names:
        raise NotFound(f"the monitor has no app or target named {name!r}",
                       hint=f"Name one of: {', '.join(names) or 'none'}")
