"""Every HTTP request railguard makes goes through :func:`request`, with one policy
(docs/http.md has the table per call site).

The order of work, and why:

1. **Check the URL** (http or https with a host): anything else is a configuration mistake,
   reported as :class:`Unreachable` with kind ``url`` so a caller that must never raise (a
   heartbeat ping) handles it like any other failure.
2. **Choose the proxy**: ``proxy="environment"`` uses ``HTTP(S)_PROXY``/``NO_PROXY`` as curl
   does; ``proxy="none"`` never does. A loopback host (``localhost``, 127.0.0.0/8, ``::1``)
   never goes through a proxy whatever the call site says: the app's own URL must not turn into
   a request that leaves the host.
3. **Send once per attempt** with a connect timeout (TCP, proxy tunnel and TLS handshake) and a
   read timeout (the longest wait for each piece of the answer). Redirects are **not** followed
   unless the call site asks: a 3xx is an answer like any other (a strict check must see it, and
   a token sent to CapRover must not follow a ``Location`` to another host).
4. **Retry** only where the call site says the request is safe to repeat: the statuses it
   names and, if it says so, a failure to connect; the delays come from a :class:`Backoff`,
   the sleeper is a parameter. A body is produced afresh for each attempt.
5. **Map the failure once**: connection refused, a host that does not resolve, a timeout, a TLS
   failure become one :class:`Unreachable` (a railguard error with a hint) naming the service
   and the place the call site gives, never the URL itself (it may carry a token). A response
   body is returned to the caller and never put in a message here.

Bodies are ``bytes`` or a :class:`Stream` (a known length and a function that yields the chunks),
sent chunk by chunk with ``Content-Length``: :func:`multipart` builds a form from fields and
files without holding the file in memory. Standard library only: the five callers need a GET
or a POST each, and this keeps their behaviour where it was (``probe.py`` stays separate, for
its start-up time).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from railguard.errors import RailguardError

Proxy = Literal["environment", "none"]
#: What went wrong when no HTTP answer came: the ``kind`` of an :class:`Unreachable`.
Kind = Literal["refused", "dns", "timeout", "tls", "connection", "url"]
#: Size of each chunk read from a file for a streamed body.
CHUNK = 64 * 1024


class Unreachable(RailguardError):
    """No HTTP answer: refused, unknown host, timeout, TLS failure, dropped connection, bad URL."""

    kind: Kind = "connection"
    detail: str = ""
    attempts: int = 1


@dataclass(frozen=True)
class Backoff:
    """``attempts`` retries after the first try, delays doubling from ``first`` up to ``cap``."""

    attempts: int = 0
    first: float = 1.0
    cap: float = 20.0

    def delays(self) -> list[float]:
        return [min(self.cap, self.first * 2**i) for i in range(self.attempts)]


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float


@dataclass(frozen=True)
class Stream:
    """A body of ``length`` bytes; ``chunks()`` yields it, and is called again for a retry."""

    length: int
    chunks: Callable[[], Iterable[bytes]]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    #: How many times the request was sent (1 when it was not retried).
    attempts: int = 1


def request(method: str, url: str, *, service: str, where: str, timeout: float | Timeouts,
            proxy: Proxy, headers: Mapping[str, str] | None = None, body: bytes | Stream | None = None,
            follow_redirects: bool = False, retry: Backoff | None = None,
            retry_statuses: Iterable[int] = (), retry_unreachable: bool = False,
            sleep: Callable[[float], None] = time.sleep, read_limit: int | None = None,
            hint: str | None = None, hints: Mapping[str, str] | None = None,
            error: type[Unreachable] = Unreachable) -> Response:
    """Send one request under the policy above; the answer whatever its status, or :class:`Unreachable`.

    ``service`` and ``where`` name the other end in a message ("cannot reach CapRover at
    https://captain.example.com: connection refused"); ``hint`` (or ``hints[kind]``) says what
    to check; ``error`` is the :class:`Unreachable` subclass to raise. ``read_limit`` bounds how
    much of the body is read.
    """
    timeouts = timeout if isinstance(timeout, Timeouts) else Timeouts(timeout, timeout)
    statuses = frozenset(retry_statuses)
    delays = (retry or Backoff()).delays()
    opener = _opener(url, proxy, follow_redirects, timeouts, service, where, hint, error)
    attempt = 0
    while True:
        attempt += 1
        last = attempt > len(delays)
        try:
            response = _send_once(opener, method, url, headers or {}, body, timeouts, read_limit)
        except urllib.error.URLError as exc:
            # urllib wraps what fails while connecting and sending; a timeout there is the connect one.
            failure = _unreachable(exc.reason, timeouts.connect, service, where, hint, hints, error)
            failure.attempts = attempt
            if last or not retry_unreachable:
                raise failure from None
        except (OSError, http.client.HTTPException) as exc:
            failure = _unreachable(exc, timeouts.read, service, where, hint, hints, error)
            failure.attempts = attempt
            if last or not retry_unreachable:
                raise failure from None
        else:
            if last or response.status not in statuses:
                return Response(response.status, response.body, response.headers, attempt)
        sleep(delays[attempt - 1])


def multipart(fields: Mapping[str, str],
              files: Mapping[str, tuple[str, str, bytes | Path | Stream]]) -> tuple[Stream, str]:
    """A multipart/form-data body and its Content-Type; each file is ``(filename, content type,
    source)`` with ``source`` bytes (sent without a copy), a path (read chunk by chunk) or a
    :class:`Stream`. The length is known before the first byte is sent."""
    boundary = f"railguard-{uuid.uuid4().hex}"
    pieces: list[bytes | Path | Stream] = []
    for name, value in fields.items():
        pieces.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                      + value.encode() + b"\r\n")
    for name, (filename, content_type, source) in files.items():
        pieces.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                      f"Content-Type: {content_type}\r\n\r\n".encode())
        pieces.append(source)
        pieces.append(b"\r\n")
    pieces.append(f"--{boundary}--\r\n".encode())
    length = sum(_length(piece) for piece in pieces)

    def chunks() -> Iterator[bytes]:
        for piece in pieces:
            if isinstance(piece, Path):
                with open(piece, "rb") as handle:
                    yield from _read_chunks(handle)
            elif isinstance(piece, Stream):
                yield from piece.chunks()
            else:
                view = memoryview(piece)
                for start in range(0, len(view), CHUNK):
                    yield view[start:start + CHUNK]  # type: ignore[misc]  # http.client sends any buffer

    return Stream(length, chunks), f"multipart/form-data; boundary={boundary}"


def is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost."} or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- one attempt ------------------------------------------------------------------------------

def _send_once(opener: urllib.request.OpenerDirector, method: str, url: str, headers: Mapping[str, str],
               body: bytes | Stream | None, timeouts: Timeouts, read_limit: int | None) -> Response:
    all_headers = dict(headers)
    data: Any = None
    if isinstance(body, Stream):
        all_headers["Content-Length"] = str(body.length)
        data = iter(body.chunks())
    elif body is not None:
        data = body
    prepared = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with opener.open(prepared, timeout=timeouts.connect) as answer:
            return Response(answer.status, answer.read(read_limit) if read_limit else answer.read(),
                            dict(answer.headers.items()))
    except urllib.error.HTTPError as exc:  # a 4xx, 5xx or unfollowed 3xx: still an answer
        try:
            payload = (exc.read(read_limit) if read_limit else exc.read()) if exc.fp else b""
        finally:
            exc.close()
        return Response(exc.code, payload, dict(exc.headers.items()) if exc.headers else {})


def _opener(url: str, proxy: Proxy, follow_redirects: bool, timeouts: Timeouts, service: str, where: str,
            hint: str | None, error: type[Unreachable]) -> urllib.request.OpenerDirector:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        failure = error(f"cannot reach {service} at {where}: not an http(s) URL", hint=hint)
        failure.kind, failure.detail = "url", "not an http(s) URL"
        raise failure
    direct = proxy == "none" or is_loopback(parts.hostname)
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler({} if direct else None),
        _HTTPHandler(timeouts.read), _HTTPSHandler(timeouts.read)]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    return urllib.request.build_opener(*handlers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError, that is, as an answer


class _ReadTimeoutHTTP(http.client.HTTPConnection):
    """Connects within the connect timeout, then waits at most ``read_timeout`` per read."""

    read_timeout: float = 60.0

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _ReadTimeoutHTTPS(http.client.HTTPSConnection):
    read_timeout: float = 60.0

    def connect(self) -> None:
        super().connect()  # TCP, the proxy's CONNECT and the TLS handshake, within the connect timeout
        self.sock.settimeout(self.read_timeout)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self._read_timeout = read_timeout

    def _connection(self, host: str, **kwargs: Any) -> http.client.HTTPConnection:
        connection = _ReadTimeoutHTTP(host, **kwargs)
        connection.read_timeout = self._read_timeout
        return connection

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self._read_timeout = read_timeout

    def _connection(self, host: str, **kwargs: Any) -> http.client.HTTPConnection:
        connection = _ReadTimeoutHTTPS(host, **kwargs)
        connection.read_timeout = self._read_timeout
        return connection

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        # HTTPSHandler keeps the TLS context it was built with in _context (no public accessor).
        context = getattr(self, "_context", None)
        return self.do_open(self._connection, req, context=context)


# --- failures ---------------------------------------------------------------------------------

def _unreachable(cause: object, timeout: float, service: str, where: str, hint: str | None,
                 hints: Mapping[str, str] | None, error: type[Unreachable]) -> Unreachable:
    kind, detail = _classify(cause, timeout)
    failure = error(f"cannot reach {service} at {where}: {detail}", hint=(hints or {}).get(kind, hint))
    failure.kind, failure.detail = kind, detail
    return failure


def _classify(cause: object, timeout: float) -> tuple[Kind, str]:
    if isinstance(cause, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(cause, socket.gaierror):
        return "dns", f"cannot resolve host: {cause.strerror or cause}"
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return "timeout", f"timed out after {timeout:.3g}s"  # a remaining budget reads 0.591s, not 0.59128s
    if isinstance(cause, ssl.SSLError):
        return "tls", f"TLS error: {cause.reason or cause}"
    if isinstance(cause, http.client.RemoteDisconnected):
        return "connection", "the connection closed without an answer"
    if isinstance(cause, http.client.HTTPException):
        return "connection", f"not an HTTP answer ({type(cause).__name__})"
    if isinstance(cause, OSError):
        return "connection", cause.strerror or str(cause) or type(cause).__name__
    return "connection", str(cause) or type(cause).__name__


def _length(piece: bytes | Path | Stream) -> int:
    if isinstance(piece, Path):
        return os.stat(piece).st_size
    if isinstance(piece, Stream):
        return piece.length
    return len(piece)


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk
