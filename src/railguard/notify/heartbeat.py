"""Dead-man's-switch pings to a healthchecks.io-compatible URL around each job.

The ping API (shared/reference/monitoring.md): ``<base>/start`` when a run begins, ``<base>``
for success, ``<base>/fail`` or ``<base>/<exit code>`` at the end, ``?rid=<uuid>`` pairing a
start with its end, and a POST body (up to 10 000 bytes on a self-hosted server) stored as
the run's log. A failure-only alert cannot notice a backup that never started; a heartbeat
whose pings stop can.

A ping failure never fails the job: short timeout, a few retries for errors that may pass
(connection refused, timeouts, 429, 5xx; a ping is safe to repeat), then one logged line and a counter in
``<state_dir>/heartbeats.json``. Ping URLs are secrets; only the variable's name is shown.
:func:`configured_heartbeats` reads that record back for the status page: each heartbeat an app
has, named by its variable, with its last ping's time and result.
The request goes through :func:`railguard.http.request` (docs/http.md): the environment's proxy,
no redirect followed.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard import http
from railguard.config import AppSettings, Settings
from railguard.durable import write_bytes_atomic
from railguard.errors import ConfigError
from railguard.secrets import Secret, read_secret, redact

log = logging.getLogger("railguard.heartbeat")

#: healthchecks.io's default Ping-Body-Limit on a self-hosted server.
BODY_LIMIT = 10_000
STATE_FILE = "heartbeats.json"
#: Answers that may pass by asking again; any other 4xx (a 404 unknown check) will not.
RETRIED_STATUSES = frozenset({429, *range(500, 600)})
#: The jobs a heartbeat can watch (``[apps.NAME.heartbeat] <job>_url_env``), in the order a page lists them.
JOBS = ("backup", "drill", "replicate")


@dataclass(frozen=True)
class PingResult:
    signal: str  # start | success | fail | <exit code>
    ok: bool
    attempts: int
    reason: str = ""


class Heartbeat:
    def __init__(self, url: Secret, *, source: str, timeout: float = 10.0, retries: int = 2,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._url = url
        self.source = source
        self.timeout = timeout
        self.retries = retries
        self._sleep = sleep
        self.rid = str(uuid.uuid4())

    def start(self) -> PingResult:
        return self._ping("start", "/start", b"")

    def success(self, body: str = "") -> PingResult:
        return self._ping("success", "", body.encode())

    def fail(self, body: str = "") -> PingResult:
        return self._ping("fail", "/fail", body.encode())

    def exit_status(self, code: int, body: str = "") -> PingResult:
        """``/<code>``: 0 records a success, anything else a failure with that code."""
        return self._ping(str(int(code)), f"/{int(code)}", body.encode())

    def _ping(self, signal: str, suffix: str, body: bytes) -> PingResult:
        base = self._url.reveal().rstrip("/")
        url = f"{base}{suffix}?rid={self.rid}"
        # healthchecks keeps the *first* Ping-Body-Limit bytes; the end of a log says most.
        data = body[-BODY_LIMIT:]
        try:
            reply = http.request("POST", url, service="the heartbeat server", where=self.source,
                                 timeout=self.timeout, proxy="environment",
                                 headers={"Content-Type": "text/plain; charset=utf-8",
                                          "User-Agent": "railguard-heartbeat"},
                                 body=data, retry=http.Backoff(self.retries, first=0.5, cap=4.0),
                                 retry_statuses=RETRIED_STATUSES, retry_unreachable=True,
                                 sleep=self._sleep, read_limit=1024)
        except http.Unreachable as exc:
            reason, attempt = exc.detail, exc.attempts
        else:
            if 200 <= reply.status < 300:
                return PingResult(signal, True, reply.attempts)
            reason, attempt = f"HTTP {reply.status}", reply.attempts
        reason = redact(reason, [self._url])
        log.warning("heartbeat %s to %s failed after %d attempt(s): %s", signal, self.source, attempt, reason)
        return PingResult(signal, False, attempt, reason)


def heartbeat_for(app: AppSettings, job: str, *, env: Mapping[str, str] = os.environ,
                  sleep: Callable[[float], None] = time.sleep) -> Heartbeat | None:
    """The heartbeat of ``job`` (backup, drill, replicate) when its URL variable is set."""
    var = getattr(app.heartbeat, f"{job}_url_env")
    if not var:
        return None
    try:
        secret = read_secret(var, env)
    except Exception as exc:  # an unreadable _FILE is a heartbeat failure, not a job failure
        log.warning("heartbeat for %s disabled: %s", job, getattr(exc, "message", exc))
        return None
    if secret is None:
        return None
    return Heartbeat(secret, source=f"${var}", timeout=app.heartbeat.timeout.total_seconds(),
                     retries=app.heartbeat.retries, sleep=sleep)


def record_pings(settings: Settings, app_name: str, job: str, results: list[PingResult], now: datetime) -> None:
    """Count failed pings in ``<state_dir>/heartbeats.json`` (for status and metrics); best effort."""
    failures = [r for r in results if not r.ok]
    path = settings.state_dir / STATE_FILE
    try:
        state = read_ping_state(path)
        entry = state.setdefault(f"{app_name}/{job}", {"failures": 0, "pings": 0})
        entry["pings"] += len(results)
        entry["failures"] += len(failures)
        if failures:
            entry["last_failure"] = {"at": now.isoformat(), "signal": failures[-1].signal,
                                     "reason": failures[-1].reason}
        else:
            entry["last_ok"] = now.isoformat()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, (json.dumps(state, indent=1) + "\n").encode())
    except OSError as exc:
        log.warning("cannot record heartbeat results in %s: %s", path, exc.strerror or exc)


def read_ping_state(path: Path) -> dict[str, dict[str, Any]]:
    """The counts per ``app/job``; what is not an object of objects (a damaged file) reads as none."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict):
        return {}
    return {key: entry for key, entry in state.items() if isinstance(entry, dict)}


@dataclass(frozen=True)
class HeartbeatRecord:
    """One heartbeat an app has, and what ``heartbeats.json`` says of its pings. ``source`` is
    the variable that holds the ping URL (``$VAR``): the URL is a secret and is never here."""

    app: str
    #: backup | drill | replicate
    job: str
    source: str
    pings: int = 0
    failures: int = 0
    #: The last run whose pings all answered 2xx.
    last_ok_at: datetime | None = None
    #: The last run with a ping that failed, its signal (start, 0, fail, ...) and why.
    last_failure_at: datetime | None = None
    last_failure_signal: str = ""
    last_failure_reason: str = ""

    @property
    def last_ping_at(self) -> datetime | None:
        return max((moment for moment in (self.last_ok_at, self.last_failure_at) if moment), default=None)

    @property
    def last_result(self) -> str | None:
        """``ok`` or ``failed``: how the last run's pings went; None when none was ever sent."""
        if self.last_ping_at is None:
            return None
        # Two runs recorded in the same second: the failure is the one not to hide.
        return "failed" if self.last_ping_at == self.last_failure_at else "ok"


def configured_heartbeats(settings: Settings, app_name: str, app: AppSettings, *,
                          env: Mapping[str, str] = os.environ,
                          state: Mapping[str, Mapping[str, Any]] | None = None) -> list[HeartbeatRecord]:
    """Each heartbeat of ``app_name`` (each ``*_url_env`` of its ``[apps.NAME.heartbeat]``) with the
    pings recorded for it; ``state``: :func:`read_ping_state` of ``heartbeats.json`` when the
    caller has read it (once for every app). A failure's reason was scrubbed of the URL when it
    was recorded; it is scrubbed again here, of the URL when this process can read its variable
    and of every secret it knows, in case an older railguard or a hand wrote it there."""
    if state is None:
        state = read_ping_state(settings.state_dir / STATE_FILE)
    records = []
    for job in JOBS:
        var = getattr(app.heartbeat, f"{job}_url_env")
        if not var:
            continue
        entry = state.get(f"{app_name}/{job}") or {}
        failure = entry.get("last_failure")
        failure = failure if isinstance(failure, dict) else {}
        records.append(HeartbeatRecord(
            app_name, job, f"${var}", _count(entry.get("pings")), _count(entry.get("failures")),
            _moment(entry.get("last_ok")), _moment(failure.get("at")), redact(str(failure.get("signal") or "")),
            redact(str(failure.get("reason") or ""), [_url_of(var, env)])))
    return records


def _url_of(var: str, env: Mapping[str, str]) -> Secret | None:
    try:
        return read_secret(var, env)
    except ConfigError:  # an unreadable _FILE: nothing more to scrub than the secrets already known
        return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _moment(value: object) -> datetime | None:
    """An ISO 8601 time with its offset from the file; None for anything else (a damaged file)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
