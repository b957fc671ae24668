"""``railguard monitor list``: each target's state and uptime, read from the store only, with
the pause or the deploy window that holds its alerts now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from railguard.config import Settings
from railguard.errors import ConfigError
from railguard.monitor.control import DeployWindow, Pause, active_pause, open_window
from railguard.monitor.state import TargetState
from railguard.monitor.store import FILE_NAME, MonitorStore
from railguard.monitor.targets import targets_from_settings

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass(frozen=True)
class TargetStatus:
    name: str
    url: str
    state: TargetState
    #: "24h" / "7d" / "30d" -> fraction of successful checks, None when there were none.
    uptime: dict[str, float | None]
    #: The pause in force for the target or its app, and the deploy window open for its app.
    pause: Pause | None = None
    deploy: DeployWindow | None = None

    def as_dict(self) -> dict[str, Any]:
        s = self.state
        return {"name": self.name, "url": self.url, "status": s.status, "down_since": s.down_since,
                "last_check_at": s.last_check_at, "last_ok": s.last_ok,
                "last_failure_at": s.last_failure_at, "last_failure_reason": s.last_failure_reason,
                "consecutive_failures": s.consecutive_failures, "uptime": self.uptime,
                "paused": self.pause.as_dict() if self.pause else None,
                "deploy_window": self.deploy.as_dict() if self.deploy else None}


def monitor_status(settings: Settings, now: datetime) -> list[TargetStatus] | None:
    """Every target the monitor has checked, or None when it never ran with this state_dir (a
    deploy or a pause may have written the file before the monitor's first round)."""
    path = settings.state_dir / FILE_NAME
    if not path.exists():
        return None
    apps = _apps_of_targets(settings)
    store = MonitorStore(path)
    try:
        states = store.states()
        if not states:
            return None
        pauses, windows = store.pauses(now), store.deploy_windows(now)
        return [TargetStatus(name, url, state,
                             {label: store.uptime(name, now - span).ratio for label, span in WINDOWS.items()},
                             pause=active_pause(pauses, (name, apps.get(name)), now),
                             deploy=open_window(windows, apps.get(name), now))
                for name, (url, state) in sorted(states.items())]
    finally:
        store.close()


def _apps_of_targets(settings: Settings) -> dict[str, str | None]:
    try:
        return {target.name: target.app for target in targets_from_settings(settings)}
    except ConfigError:  # the configuration lost its targets since the monitor ran: by name only
        return {name: name for name in settings.apps}
