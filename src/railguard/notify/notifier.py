"""Routing, idempotency and accounting around :class:`AppriseChannel`.

An event goes to the URLs of ``[notifications.routes].<event>`` when that route exists,
else to ``urls_env`` when the event is listed in ``events``, else nowhere. Delivery
problems (a bad URL, an endpoint down, no state directory) are logged and counted, and
``notify`` returns a :class:`Delivery` that says what happened: it never raises for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from railguard.config import NotificationSettings, Settings
from railguard.errors import RailguardError
from railguard.notify.channel import AppriseChannel
from railguard.notify.sent import SentLog, SentState, count, remember_key
from railguard.secrets import read_secret, redact

log = logging.getLogger("railguard.notify")

KIND_OF_EVENT = {
    "backup_failed": "failure", "destination_failed": "failure", "drill_failed": "failure",
    "drill_passed": "success", "deploy_ok": "success", "deploy_failed": "failure", "rollback": "warning",
    "monitor_down": "failure", "monitor_recovered": "success", "monitor_reminder": "warning", "test": "info",
}


@dataclass(frozen=True)
class Delivery:
    event: str
    #: sent | failed | duplicate (key already sent) | unrouted (no URLs for this event)
    status: str
    reason: str = ""
    key: str | None = None
    #: The environment variable the URLs came from (never the URLs).
    source: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in {"sent", "duplicate", "unrouted"}

    def as_dict(self) -> dict[str, str | None]:
        return {"event": self.event, "status": self.status, "reason": self.reason or None, "key": self.key,
                "source": self.source}


class Notifier:
    def __init__(self, settings: NotificationSettings, state_dir: Path | None, *,
                 env: Mapping[str, str] = os.environ) -> None:
        self.settings = settings
        self.sent = SentLog(state_dir, remember=settings.remember) if state_dir is not None else None
        self._env = env
        self._channels: dict[str, AppriseChannel] = {}
        # The monitor delivers alerts from several threads; one channel per variable.
        self._channels_lock = threading.Lock()
        #: Counts of this process, also when the state directory cannot be written.
        self.counts: dict[str, int] = {}

    def source_for(self, event: str) -> str | None:
        """The environment variable whose URLs receive ``event``, or None."""
        if event in self.settings.routes:
            return self.settings.routes[event]
        return self.settings.urls_env if event in self.settings.events else None

    def channel(self, var: str) -> AppriseChannel | None:
        """The channel for ``$var`` (None when it is unset); raises ChannelError for bad URLs."""
        with self._channels_lock:
            if var not in self._channels:
                secret = read_secret(var, self._env)
                if secret is None:
                    return None
                self._channels[var] = AppriseChannel(secret, source=f"${var}")
            return self._channels[var]

    def prepare(self, events: list[str]) -> list[str]:
        """Open the channels of ``events`` now (a bad URL raises ChannelError here, at start-up,
        rather than at the first alert); returns the events that have nowhere to go."""
        unrouted = []
        for event in events:
            source = self.source_for(event)
            if source is None or self.channel(source) is None:
                unrouted.append(event)
        return unrouted

    def notify(self, event: str, title: str, body: str, *, key: str | None = None,
               now: datetime | None = None) -> Delivery:
        """Send ``title``/``body`` for ``event``; with ``key``, at most once per key ever sent."""
        now = now or datetime.now(timezone.utc)
        # A message leaves railguard here: no secret the process knows goes with it, in any form.
        title, body = redact(title), redact(body)
        source = self.source_for(event)
        if source is None:
            return Delivery(event, "unrouted", "event not listed in [notifications] events", key)
        try:
            channel = self.channel(source)
        except RailguardError as exc:
            with self._state() as state:
                return self._finish(event, "failed", exc.message, key, f"${source}", now, state)
        if channel is None:
            return Delivery(event, "unrouted", f"${source} is not set", key, f"${source}")
        kind = KIND_OF_EVENT.get(event, "info")
        if key is None:
            # No key, no lock across the send: the monitor's alerts go out side by side.
            delivered, reason = channel.send(title, body, kind)
            with self._state() as state:
                return self._finish(event, "sent" if delivered else "failed", reason, None, channel.source, now,
                                    state)
        with self._state() as state:  # held across the send: two runs at once still send one message
            if state is not None and key in state.keys:
                return self._finish(event, "duplicate", "", key, channel.source, now, state)
            delivered, reason = channel.send(title, body, kind)
            if delivered and state is not None:
                remember_key(state, key, now)
            return self._finish(event, "sent" if delivered else "failed", reason, key, channel.source, now, state)

    def _finish(self, event: str, status: str, reason: str, key: str | None, source: str | None,
                now: datetime, state: SentState | None) -> Delivery:
        self.counts[status] = self.counts.get(status, 0) + 1
        if state is not None:
            count(state, status)
            if status == "failed":
                state.last_failure = {"event": event, "at": now.isoformat(), "reason": reason}
        if status == "failed":
            log.warning("notification %s via %s failed: %s", event, source or "?", reason)
        return Delivery(event, status, reason, key, source)

    @contextlib.contextmanager
    def _state(self) -> Iterator[SentState | None]:
        """The persisted state under its lock, written back afterwards; None when it cannot be
        used (logged): a message still goes out, without idempotency."""
        if self.sent is None:
            yield None
            return
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.sent.locked())
            except OSError as exc:
                log.warning("notification state in %s unavailable (%s); sending without idempotency",
                            self.sent.path.parent, exc.strerror or exc)
                yield None
                return
            state = self.sent.read()
            yield state
            try:
                self.sent.write(state)
            except OSError as exc:
                log.warning("cannot record the notification in %s (%s)", self.sent.path, exc.strerror or exc)


def notifier_for(settings: Settings, *, env: Mapping[str, str] = os.environ) -> Notifier:
    return Notifier(settings.notifications, settings.state_dir, env=env)
