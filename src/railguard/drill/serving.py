"""Is the drilled app serving? A bounded wait for ``/health`` 200, then what ``/metrics`` says.

The HTTP part is a thin edge (:func:`wait_for_health`, :func:`fetch`); reading the metrics is a
pure function of their text (:func:`judge_metrics`), parsed with prometheus_client's parser.
The GET goes through :func:`railguard.http.request` (docs/http.md) with no proxy ever (the
drilled app is on 127.0.0.1), no redirect followed and no retry (the wait polls again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from railguard import http

#: Longest single request while waiting: the app may be slow to answer its first request.
REQUEST_TIMEOUT = 2.0
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all (refused, timeout)
    body: str
    error: str | None = None

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        first_line = self.body.strip().splitlines()[0][:200] if self.body.strip() else ""
        return f"HTTP {self.status}" + (f" {first_line!r}" if first_line else "") + (
            f"; {self.error}" if self.error else "")


def fetch(url: str, timeout: float = REQUEST_TIMEOUT) -> Answer:
    # No proxy: the drilled app is on 127.0.0.1, and an HTTP_PROXY from the environment must not
    # turn the request into one that leaves the host.
    try:
        reply = http.request("GET", url, service="the drilled app", where=url, timeout=timeout, proxy="none",
                             read_limit=1 << 20)
    except http.Unreachable as exc:
        return Answer(None, "", exc.detail)
    return Answer(reply.status, reply.body.decode("utf-8", "replace"))


@dataclass(frozen=True)
class HealthWait:
    ok: bool
    attempts: int
    seconds: float
    last: Answer
    #: Set when the app's process ended while we waited.
    exited_with: int | None = None


def wait_for_health(url: str, *, timeout: float, exit_code: Callable[[], int | None],
                    monotonic: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep,
                    waited: Callable[[float], None] | None = None) -> HealthWait:
    """Poll ``url`` until it answers 200, the process exits, or ``timeout`` seconds pass.

    ``waited`` is told the seconds waited so far before each poll (a progress bar's count)."""
    started = monotonic()
    deadline = started + timeout
    attempts = 0
    last = Answer(None, "", "not asked yet")
    answered: Answer | None = None  # the app's last HTTP answer, which the reason must keep
    while True:
        if waited is not None:
            waited(monotonic() - started)
        code = exit_code()
        if code is not None:
            return HealthWait(False, attempts, monotonic() - started, _keeping(answered, last), code)
        remaining = deadline - monotonic()
        if remaining <= 0:
            return HealthWait(False, attempts, monotonic() - started, _keeping(answered, last))
        attempts += 1
        last = fetch(url, min(REQUEST_TIMEOUT, max(remaining, 0.1)))
        if last.status == 200:
            return HealthWait(True, attempts, monotonic() - started, last)
        if last.status is not None:
            answered = last
        sleep(min(POLL_INTERVAL, max(deadline - monotonic(), 0)))


def _keeping(answered: Answer | None, last: Answer) -> Answer:
    """``last``, unless it is no answer at all and the app did answer before: the final poll
    gets only what is left of the wait and can time out on a loaded machine, which must not
    hide the 503 that says why the app is unhealthy."""
    if last.status is not None or answered is None:
        return last
    return Answer(answered.status, answered.body, f"then {last.error or 'no answer'}")


@dataclass(frozen=True)
class MetricsVerdict:
    ok: bool
    detail: str
    migrations_ok: float | None = None
    started_at_ms: float | None = None


def judge_metrics(answer: Answer, *, migrations_metric: str, started_metric: str,
                  started_not_before_ms: float) -> MetricsVerdict:
    """Require ``migrations_metric`` to be 1 when exposed, and ``started_metric`` (epoch ms), when
    exposed, to be no older than the drill's own start: otherwise the process answering on the
    port is not the one the drill started."""
    if answer.status == 404:
        return MetricsVerdict(True, "not exposed (404)")
    if answer.status != 200:
        return MetricsVerdict(False, f"metrics answered {answer.describe()}")
    # Here, not at the top: `railguard status` reads drill.log through the runner, and
    # prometheus_client costs more to import than the whole status screen.
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(answer.body):
            for sample in family.samples:
                values.setdefault(sample.name, float(sample.value))
    except (ValueError, TypeError, IndexError) as exc:
        return MetricsVerdict(False, f"metrics are not valid Prometheus text: {exc}")
    migrations = values.get(migrations_metric)
    started = values.get(started_metric)
    if migrations is not None and migrations != 1:
        return MetricsVerdict(False, f"{migrations_metric} is {migrations:g}, not 1: the migrations did not apply",
                              migrations, started)
    if started is not None and started < started_not_before_ms:
        return MetricsVerdict(False, f"{started_metric} is {started:.0f}, before the drill started the app: "
                                     "another process answers on the drill's port", migrations, started)
    parts = [f"{migrations_metric} 1" if migrations is not None else f"{migrations_metric} not exposed"]
    if started is not None:
        parts.append(f"{started_metric} matches the started process")
    return MetricsVerdict(True, ", ".join(parts), migrations, started)
