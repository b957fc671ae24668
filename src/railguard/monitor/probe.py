"""One strict HTTP check: exactly the expected status (no redirects followed), optional body
and response-time conditions, a hard timeout. Returns a :class:`CheckResult`, never raises.

``http.client`` directly rather than urllib: it follows no redirect (a strict probe must not,
shared/reference/monitoring.md) and costs little per check, which matters at 200 targets.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from railguard.monitor.state import CheckResult
from railguard.monitor.targets import Target

#: Enough of a health body to look for a marker in; the rest is not read.
BODY_LIMIT = 64 * 1024


def probe(target: Target, *, clock: Callable[[], datetime]) -> CheckResult:
    at = clock()
    parts = urlsplit(target.url)
    timeout = target.timeout.total_seconds()
    started = time.monotonic()
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", path, headers={"User-Agent": "railguard-monitor", "Connection": "close"})
        response = connection.getresponse()
        body = response.read(BODY_LIMIT) if target.body_contains else b""
        elapsed = time.monotonic() - started
        status = response.status
    except (TimeoutError, socket.timeout):
        return CheckResult(False, at, f"timed out after {timeout:g}s", time.monotonic() - started)
    except ssl.SSLError as exc:
        return CheckResult(False, at, f"TLS error: {exc.reason or exc}", time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        return CheckResult(False, at, _connection_reason(exc), time.monotonic() - started)
    finally:
        connection.close()
    if status != target.expected_status:
        return CheckResult(False, at, f"HTTP {status} (expected {target.expected_status})", elapsed)
    if target.body_contains and target.body_contains.encode() not in body:
        return CheckResult(False, at, f"body lacks {target.body_contains!r}", elapsed)
    if target.max_response_time and elapsed > target.max_response_time.total_seconds():
        return CheckResult(False, at, f"slow: {elapsed:.3f}s > {target.max_response_time.total_seconds():g}s",
                           elapsed)
    return CheckResult(True, at, "", elapsed)


def _connection_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed without a response"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text
