"""The monitor's shell: probe every target concurrently, step the pure state machine, persist,
send alerts, write metrics. The clock is a parameter so the tests can drive it.

Each round first reads what other processes told the monitor (:mod:`railguard.monitor.control`):
the deploy windows and pauses in its store. A target whose app is deploying, or that is paused,
is silenced like in a maintenance window; a DOWN within ``deploy_grace`` after a deploy names it
and the rollback command. A window whose deploy failed at the platform is dropped as soon as
``deploy_outcome`` (handed in by the command, which may read the deploy history; the monitor
may not import the deploy side) says so.

Alerts go out after the round's state is saved; a DOWN alert whose delivery failed leaves
the outage unannounced (``down_alerted`` stays false), so the next failing check tries
again, and a RECOVERED follows only an outage that someone was told about. A notification
failure is logged and counted, never raised: the monitor keeps running.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from railguard.config import MonitorSettings, Settings
from railguard.errors import ConfigError
from railguard.locking import exclusive_lock
from railguard.logfmt import format_line
from railguard.monitor.control import DeployWindow, Quiet, active_pause, after_deploy, open_window, recent_deploy
from railguard.monitor.maintenance import active_window
from railguard.monitor.probe import probe
from railguard.monitor.state import Alert, CheckResult, Policy, TargetState, describe_duration, step
from railguard.monitor.store import MonitorStore
from railguard.monitor.targets import Target
from railguard.notify import Delivery, Notifier

log = logging.getLogger("railguard.monitor")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RoundReport:
    started_at: datetime
    seconds: float
    results: dict[str, CheckResult]
    alerts: list[tuple[str, Alert, Delivery]] = field(default_factory=list)
    #: The cron expression of the maintenance window in force, if any.
    maintenance: str | None = None
    #: Time until every check of the round had answered and was saved (before alerts).
    checks_seconds: float = 0.0
    #: The targets whose alerts were held by a deploy window or a pause, and why.
    quiet: dict[str, Quiet] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(1 for result in self.results.values() if not result.ok)


#: Asked about each deploy window still open: when its deploy ended without going live (it failed
#: or was superseded at the platform, so no step after it will close the window), else None.
DeployOutcome = Callable[[DeployWindow], datetime | None]


class Monitor:
    def __init__(self, targets: Sequence[Target], settings: MonitorSettings, *, store: MonitorStore,
                 notifier: Notifier, tz: str = "UTC", clock: Clock = utc_now,
                 on_round: Callable[[RoundReport], None] | None = None,
                 deploy_outcome: DeployOutcome | None = None) -> None:
        self.targets = list(targets)
        self.settings = settings
        self.policy = Policy(settings.failure_threshold, settings.success_threshold, settings.reminder)
        self.store = store
        self.notifier = notifier
        self.tz = tz
        self.clock = clock
        self.on_round = on_round
        self.deploy_outcome = deploy_outcome
        stored = store.states()
        self.states: dict[str, TargetState] = {t.name: stored[t.name][1] if t.name in stored else TargetState()
                                               for t in self.targets}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(settings.concurrency, len(self.targets))), thread_name_prefix="probe")
        self._last_compaction: datetime | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run_round(self) -> RoundReport:
        started_at = self.clock()
        began = time.monotonic()
        window = active_window(self.settings.maintenance, started_at, self.tz)
        grace = self.settings.deploy_grace
        # Read before the checks: a deploy that opens its window during the round counts from the next.
        windows = self._live_windows(self.store.deploy_windows(started_at - grace), started_at)
        pauses = self.store.pauses(started_at)
        futures = {target.name: self._pool.submit(probe, target, clock=self.clock) for target in self.targets}
        results = {name: future.result() for name, future in futures.items()}
        pending: list[tuple[Target, Alert, DeployWindow | None]] = []
        rows = []
        quiet: dict[str, Quiet] = {}
        deploys: dict[str, tuple[int, str]] = {}
        for target in self.targets:
            result = results[target.name]
            held = Quiet(open_window(windows, target.app, started_at),
                         active_pause(pauses, (target.name, target.app), started_at))
            if held.silenced:
                quiet[target.name] = held
            after = recent_deploy(windows, target.app, result.at, grace)
            state, alerts = step(self.states[target.name], result, self.policy,
                                 silenced=window is not None or held.silenced)
            self.states[target.name] = state
            if state.down_since is not None:  # an incident that opens now names the deploy it began with
                deploys.update(_deploy_note(windows, target, state.down_since, grace))
            rows.append((target.name, target.url, result, state))
            pending += [(target, alert, after if alert.kind == "down" else None) for alert in alerts]
        self.store.record(rows, deploys)
        report = RoundReport(started_at, 0.0, results, maintenance=window.cron if window else None,
                             checks_seconds=time.monotonic() - began, quiet=quiet)
        # Alerts go out side by side: when every target drops at once (the host's network), a
        # queue of sequential sends would push the next round back by seconds.
        sends = [(target, alert, self._pool.submit(self._deliver, target, alert, after))
                 for target, alert, after in pending]
        for target, alert, future in sends:
            delivery = future.result()
            self._after_delivery(target, alert, delivery)
            report.alerts.append((target.name, alert, delivery))
        self._compact(started_at)
        report.seconds = time.monotonic() - began
        if self.on_round:
            self.on_round(report)
        return report

    def run(self, stop: threading.Event, *, rounds: int | None = None) -> int:
        """Rounds every ``interval`` until ``stop`` is set (or ``rounds`` have run); returns the count."""
        interval = self.settings.interval.total_seconds()
        done = 0
        next_start = time.monotonic()
        while not stop.is_set() and (rounds is None or done < rounds):
            report = self.run_round()
            done += 1
            if report.seconds > interval:
                log.warning(format_line({"event": "slow_round", "seconds": round(report.seconds, 3),
                                         "interval": interval, "targets": len(self.targets)}))
            next_start += interval
            delay = next_start - time.monotonic()
            if delay < 0:  # overran: start the next round now, and do not try to catch up
                next_start = time.monotonic()
                delay = 0
            if rounds is not None and done >= rounds:
                break
            stop.wait(delay)
        return done

    def _live_windows(self, windows: list[DeployWindow], now: datetime) -> list[DeployWindow]:
        """``windows`` without those of deploys that failed at the platform: the steps after a
        deploy, which close its window, run only when it went live, and the monitor must not
        stay muted until the window's bound for a deploy that changed nothing."""
        if self.deploy_outcome is None:
            return windows
        kept = []
        for window in windows:
            if window.closed_at is None and window.is_open(now) and self.deploy_outcome(window) is not None:
                self.store.forget_deploy_window(window.app, window.deploy_id)
                log.info(format_line({"event": "deploy_window_dropped", "app": window.app,
                                      "deploy": window.deploy_id, "reason": "the deploy did not go live"}))
                continue
            kept.append(window)
        return kept

    def _deliver(self, target: Target, alert: Alert, after: DeployWindow | None) -> Delivery:
        event, title, body = alert_message(target, alert, self.states[target.name], self.tz, after=after)
        log.warning(format_line({"event": alert.kind, "target": target.name, "reason": alert.reason or None,
                                 "outage_s": int(alert.outage.total_seconds()) if alert.outage else None,
                                 "deploy": after.deploy_id if after is not None else None}))
        return self.notifier.notify(event, title, body, now=alert.at)

    def _after_delivery(self, target: Target, alert: Alert, delivery: Delivery) -> None:
        if not delivery.ok:
            log.warning(format_line({"event": "notify_failed", "target": target.name, "alert": alert.kind,
                                     "reason": delivery.reason}))
            if alert.kind == "down":
                # Not announced: the next failed check tries again, and no RECOVERED is owed.
                state = dataclasses.replace(self.states[target.name], down_alerted=False)
                self.states[target.name] = state
                self.store.save_state(target.name, target.url, state)

    def _compact(self, now: datetime) -> None:
        if self._last_compaction is None or (now - self._last_compaction).total_seconds() >= 3600:
            self.store.compact(now, self.settings.raw_history, self.settings.hourly_history)
            self._last_compaction = now


def _deploy_note(windows: Sequence[DeployWindow], target: Target, at: datetime,
                 grace: timedelta) -> dict[str, tuple[int, str]]:
    """How an outage that began ``at`` names a deploy: during its window, or within ``grace`` after."""
    during = open_window(windows, target.app, at)
    if during is not None:
        return {target.name: (during.deploy_id, f"during {during.describe()}")}
    after = recent_deploy(windows, target.app, at, grace)
    return {target.name: (after.deploy_id, after_deploy(after, at))} if after is not None else {}


def alert_message(target: Target, alert: Alert, state: TargetState, tz: str = "UTC", *,
                  after: DeployWindow | None = None) -> tuple[str, str, str]:
    """(event, title, body) of an alert, as a person reads it on a phone. ``after``: the deploy
    a DOWN follows within ``deploy_grace``; the alert names it and how to undo it."""
    since = _clock_time(alert.down_since, tz) if alert.down_since else "?"
    if alert.kind == "down":
        body = (f"{target.name} is DOWN: {alert.reason}. {state.consecutive_failures} failed checks in a row "
                f"since {since} ({target.url}).")
        if after is None:
            return "monitor_down", f"{target.name} is DOWN", body
        return ("monitor_down", f"{target.name} is DOWN after deploy {after.deploy_id}",
                f"{body} This is {after_deploy(after, alert.at)}. "
                f"To roll back: railguard rollback --app {after.app}")
    if alert.kind == "recovered":
        outage = describe_duration(alert.outage) if alert.outage is not None else "?"
        return ("monitor_recovered", f"{target.name} RECOVERED after {outage}",
                f"{target.name} is back UP after {outage} down (since {since}).")
    outage = describe_duration(alert.outage) if alert.outage is not None else "?"
    return ("monitor_reminder", f"{target.name} still DOWN ({outage})",
            f"{target.name} is still DOWN after {outage} (since {since}): {alert.reason}.")


def _clock_time(moment: datetime, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


@contextlib.contextmanager
def monitor_store(settings: Settings) -> Iterator[MonitorStore]:
    """The monitor's state, held by one monitor at a time (exit 5 for a second one).

    Two monitors over one state would each send the DOWN of the same outage; the lock is taken
    here, where the state is opened, so a Python caller is held to it as the CLI is."""
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the state directory {settings.state_dir}: {exc.strerror or exc}",
                          hint="Set state_dir in railguard.toml to a directory railguard may write") from exc
    with exclusive_lock(settings.state_dir / "monitor.lock", "the monitor"):
        store = MonitorStore.in_state_dir(settings.state_dir)
        try:
            yield store
        finally:
            store.close()
