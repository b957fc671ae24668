"""What surrounds every job run (backup, drill, replicate): a heartbeat ``/start`` before it,
``/<exit code>`` after it, the metrics textfile refreshed (by the function the caller hands in:
the metrics read the logs of the jobs run inside a watch), and a notification when it failed.

None of these may change the job's outcome: each failure is logged and counted, and the
job's own result (or exception) is what the caller sees.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from railguard.config import AppSettings, Settings
from railguard.errors import ExitCode, RailguardError
from railguard.notify.heartbeat import Heartbeat, PingResult, heartbeat_for, record_pings

log = logging.getLogger("railguard.watch")

#: The notification event of each job's failure.
FAILURE_EVENT = {"backup": "backup_failed", "drill": "drill_failed", "replicate": "destination_failed"}


class JobWatch:
    def __init__(self, settings: Settings, app_name: str, app: AppSettings, job: str, *, now: datetime,
                 env: Mapping[str, str] = os.environ, sleep: Callable[[float], None] | None = None,
                 refresh_metrics: Callable[[Settings], None] | None = None) -> None:
        self.settings = settings
        #: Called after the run (railguard.metrics.refresh_textfile): given by the caller, because
        #: the metrics read the logs of the jobs that run inside a watch (the drill's among them).
        self.refresh_metrics = refresh_metrics
        self.app_name = app_name
        self.job = job
        self.now = now
        self.env = env
        kwargs = {"sleep": sleep} if sleep is not None else {}
        self.heartbeat: Heartbeat | None = heartbeat_for(app, job, env=env, **kwargs)
        self.pings: list[PingResult] = []

    def start(self) -> None:
        if self.heartbeat is not None:
            self.pings.append(self.heartbeat.start())

    def succeeded(self, exit_code: int, log_text: str) -> dict[str, Any]:
        """After a run that completed (possibly with warnings: exit code 1 reads as a failure
        to healthchecks, which is what a warning that needs attention should be)."""
        if self.heartbeat is not None:
            self.pings.append(self.heartbeat.exit_status(exit_code, log_text))
        self._after()
        return self.summary()

    def failed(self, exc: BaseException) -> None:
        """After a run that raised; the caller re-raises ``exc``."""
        code = _exit_code_of(exc)
        message = exc.message if isinstance(exc, RailguardError) else (str(exc) or type(exc).__name__)
        hint = exc.hint if isinstance(exc, RailguardError) else None
        if self.heartbeat is not None:
            self.pings.append(self.heartbeat.exit_status(code, f"{self.job} failed (exit {code}): {message}"))
        if code != ExitCode.INTERRUPTED:
            self._notify_failure(message, hint)
        self._after()

    def summary(self) -> dict[str, Any]:
        return {"heartbeat": [{"signal": p.signal, "ok": p.ok, "attempts": p.attempts, "reason": p.reason or None}
                              for p in self.pings]}

    def _notify_failure(self, message: str, hint: str | None) -> None:
        from railguard.notify.notifier import notifier_for

        try:
            notifier_for(self.settings, env=self.env).notify(
                FAILURE_EVENT[self.job], f"{self.app_name} {self.job} FAILED",
                f"{self.app_name} {self.job} failed: {message}" + (f"\n{hint}" if hint else ""), now=self.now)
        except Exception as exc:  # the notification path must never mask the job's own error
            log.warning("notification of the %s failure could not be sent: %s", self.job, exc)

    def _after(self) -> None:
        if self.pings:
            record_pings(self.settings, self.app_name, self.job, self.pings, self.now)
        if self.refresh_metrics is not None:
            self.refresh_metrics(self.settings)


def _exit_code_of(exc: BaseException) -> int:
    if isinstance(exc, RailguardError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.ERROR)
