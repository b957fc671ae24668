"""Fetching the app's answers until they pass or the bounded wait runs out, and telling
people about it ("deploy OK <commit>" once per commit; "deploy failed" each time).

Each GET goes through :func:`railguard.http.request` (docs/http.md): no redirect followed (a
``/health`` that redirects is not a healthy answer), ``smoke.timeout`` for connecting and
reading, no retry inside a request (the bounded wait polls again), the environment's proxy
except for a loopback URL, which is always asked directly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from railguard import http
from railguard.config import SmokeSettings
from railguard.errors import CheckFailed
from railguard.notify import Delivery, Notifier
from railguard.smoke.checks import Evaluation, Observation, SmokeCheck, evaluate

#: A health or metrics page larger than this is not what we are looking for.
READ_LIMIT = 1024 * 1024


class SmokeFailed(CheckFailed):
    """The smoke check ran and the app did not pass it (exit 7)."""


@dataclass
class SmokeReport:
    app: str
    url: str
    deploy_started_at: datetime
    expected_commit: str | None
    checks: list[SmokeCheck]
    attempts: int
    seconds: float
    started_at: datetime | None = None
    commit: str | None = None
    notification: Delivery | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def summary(self) -> str:
        if self.ok:
            return f"smoke OK: {self.app} serves {self.commit or 'an unnamed commit'}, new process, migrations ok"
        failed = next(check for check in self.checks if not check.ok)
        return f"smoke FAILED for {self.app} after {self.attempts} attempt(s): {failed.name}: {failed.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "app": self.app, "url": self.url, "deploy_started_at": self.deploy_started_at,
                "expected_commit": self.expected_commit, "commit": self.commit, "started_at": self.started_at,
                "attempts": self.attempts, "seconds": round(self.seconds, 3),
                "checks": [check.as_dict() for check in self.checks],
                "notification": self.notification.as_dict() if self.notification else None}

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise SmokeFailed(self.summary, hint=f"Look at the app's logs; re-run: railguard smoke --app {self.app}")


def run_smoke(app: str, base_url: str, settings: SmokeSettings, *, deploy_started_at: datetime,
              expected_commit: str | None = None, monotonic: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> SmokeReport:
    """Look at the app until every check passes or ``settings.wait`` has passed."""
    base = base_url.rstrip("/")
    timeout = settings.timeout.total_seconds()
    began = monotonic()
    deadline = began + settings.wait.total_seconds()
    attempts = 0
    while True:
        attempts += 1
        evaluation = evaluate(observe(base, settings, timeout), deploy_started_at=deploy_started_at,
                              expected_commit=expected_commit, settings=settings)
        if evaluation.ok or monotonic() + settings.poll_interval.total_seconds() > deadline:
            return _report(app, base, deploy_started_at, expected_commit, evaluation, attempts, monotonic() - began)
        sleep(settings.poll_interval.total_seconds())


def observe(base: str, settings: SmokeSettings, timeout: float) -> Observation:
    health_status, health_body, health_error = _get(base + settings.health_path, timeout)
    if health_status is None:
        return Observation(None, "", health_error, metrics_error="not read: no answer from /health")
    # Read /metrics even when /health fails: "migrations_ok 0" says why better than a 503.
    metrics_status, metrics_body, metrics_error = _get(base + settings.metrics_path, timeout)
    if metrics_status != 200:
        metrics_error = metrics_error or f"HTTP {metrics_status}"
    version_status, version_body, _ = _get(base + settings.version_path, timeout)
    return Observation(health_status, health_body, health_error, metrics_body if metrics_status == 200 else None,
                       metrics_error, version_body if version_status == 200 else None)


def _get(url: str, timeout: float) -> tuple[int | None, str, str | None]:
    try:
        reply = http.request("GET", url, service="the app", where=url, timeout=timeout, proxy="environment",
                             headers={"User-Agent": "railguard-smoke"}, read_limit=READ_LIMIT)
    except http.Unreachable as exc:
        return None, "", exc.detail
    return reply.status, reply.body.decode("utf-8", "replace"), None


def _report(app: str, base: str, deploy_started_at: datetime, expected_commit: str | None,
            evaluation: Evaluation, attempts: int, seconds: float) -> SmokeReport:
    return SmokeReport(app, base, deploy_started_at, expected_commit, evaluation.checks, attempts, seconds,
                       evaluation.started_at, evaluation.commit)


def notify_result(notifier: Notifier, report: SmokeReport, *, now: datetime | None = None) -> Delivery:
    """"deploy OK <commit>" once per commit (a persisted key), or "deploy failed" with the reason."""
    now = now or datetime.now(UTC)
    if report.ok:
        identity = report.commit or (report.started_at.isoformat() if report.started_at else "unknown")
        label = (report.commit or "")[:12] or f"process started {identity}"
        delivery = notifier.notify("deploy_ok", f"{report.app} deploy OK {label}",
                                   f"{report.app} deploy OK {label}: new process serving, migrations ok "
                                   f"({report.url}).", key=f"deploy_ok:{report.app}:{identity}", now=now)
    else:
        delivery = notifier.notify("deploy_failed", f"{report.app} deploy FAILED", report.summary, now=now)
    report.notification = delivery
    return delivery
