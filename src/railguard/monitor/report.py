"""``railguard monitor list``: each target's state and uptime, read from the store only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from railguard.config import Settings
from railguard.monitor.state import TargetState
from railguard.monitor.store import FILE_NAME, MonitorStore

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass(frozen=True)
class TargetStatus:
    name: str
    url: str
    state: TargetState
    #: "24h" / "7d" / "30d" -> fraction of successful checks, None when there were none.
    uptime: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        s = self.state
        return {"name": self.name, "url": self.url, "status": s.status, "down_since": s.down_since,
                "last_check_at": s.last_check_at, "last_ok": s.last_ok,
                "last_failure_at": s.last_failure_at, "last_failure_reason": s.last_failure_reason,
                "consecutive_failures": s.consecutive_failures, "uptime": self.uptime}


def monitor_status(settings: Settings, now: datetime) -> list[TargetStatus] | None:
    """Every target the monitor has checked, or None when it never ran with this state_dir."""
    path = settings.state_dir / FILE_NAME
    if not path.exists():
        return None
    store = MonitorStore(path)
    try:
        return [TargetStatus(name, url, state,
                             {label: store.uptime(name, now - span).ratio for label, span in WINDOWS.items()})
                for name, (url, state) in sorted(store.states().items())]
    finally:
        store.close()
