"""What surrounds every job run (backup, drill, replicate): a heartbeat ``/start`` before it,
``/<exit code>`` after it, the metrics textfile refreshed, and a notification when it failed.

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
from railguard.heartbeat import Heartbeat, PingResult, heartbeat_for, record_pings

log = logging.getLogger("railguard.watch")

#: The notification event of each job's failure.
FAILURE_EVENT = {"backup": "backup_failed", "drill": "drill_failed", "replicate": "destination_failed"}
TEXTFILE_NAME = "railguard.prom"


class JobWatch:
    def __init__(self, settings: Settings, app_name: str, app: AppSettings, job: str, *, now: datetime,
                 env: Mapping[str, str] = os.environ, sleep: Callable[[float], None] | None = None) -> None:
        self.settings = settings
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
        refresh_textfile(self.settings)


def refresh_textfile(settings: Settings) -> None:
    """Rewrite ``railguard.prom`` in the textfile directory, when one is configured; best effort."""
    directory = settings.metrics.textfile_directory
    if directory is None:
        return
    from railguard.metrics import backup_families, state_families, write_textfile

    try:
        write_textfile(directory, TEXTFILE_NAME, [*backup_families(settings), *state_families(settings)])
    except (OSError, RailguardError) as exc:
        log.warning("cannot write the metrics textfile in %s: %s", directory, getattr(exc, "strerror", None) or exc)


def _exit_code_of(exc: BaseException) -> int:
    if isinstance(exc, RailguardError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.ERROR)
