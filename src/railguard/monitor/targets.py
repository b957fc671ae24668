"""What the monitor watches: its targets, from ``[[monitor.targets]]`` or each app's ``url``.

Apart from the probe (:mod:`railguard.monitor.probe`, which needs ``http.client`` and ``ssl``)
and the runner, so a reader of the monitor's store (``railguard status``,
:mod:`railguard.monitor.report`) knows the targets without loading what checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from railguard.config import MonitorTarget, Settings
from railguard.errors import ConfigError


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    timeout: timedelta = timedelta(seconds=10)
    expected_status: int = 200
    body_contains: str | None = None
    max_response_time: timedelta | None = None
    #: The app it watches (its deploy windows and pauses hold the target's alerts), if any.
    app: str | None = None

    def describe(self) -> str:
        parts = [f"HTTP {self.expected_status}"]
        if self.body_contains:
            parts.append(f"body contains {self.body_contains!r}")
        if self.max_response_time:
            parts.append(f"response < {self.max_response_time.total_seconds():g}s")
        return ", ".join(parts)



def targets_from_settings(settings: Settings) -> list[Target]:
    """``[[monitor.targets]]`` when given, else each app's ``url`` + ``health_path``."""
    monitor = settings.monitor
    configured: list[tuple[str, str, MonitorTarget | None]] = [(t.name, t.url, t) for t in monitor.targets] or [
        (name, app.url.rstrip("/") + monitor.health_path, None) for name, app in settings.apps.items() if app.url]
    if not configured:
        raise ConfigError("the monitor has no targets",
                          hint="Set url under [apps.NAME] (its /health is checked) or add [[monitor.targets]]")
    names = [name for name, _, _ in configured]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ConfigError(f"monitor target {duplicate!r} appears twice",
                          hint="Give each [[monitor.targets]] a unique name")
    for _, _, t in configured:
        if t is not None and t.app is not None and t.app not in settings.apps:
            raise ConfigError(f"monitor target {t.name!r} names app {t.app!r}, which is not under [apps]",
                              hint=f"Set app to one of: {', '.join(sorted(settings.apps)) or 'none'}, or leave it out")
    return [Target(
        name=name, url=url,
        timeout=(t.timeout if t and t.timeout else monitor.timeout),
        expected_status=(t.expected_status if t and t.expected_status else monitor.expected_status),
        body_contains=(t.body_contains if t and t.body_contains else monitor.body_contains),
        max_response_time=(t.max_response_time if t and t.max_response_time else monitor.max_response_time),
        app=(t.app if t and t.app else name if name in settings.apps else None),
    ) for name, url, t in configured]
