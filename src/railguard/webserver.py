"""How railguard serves HTTP (the gate, the daemon): uvicorn with h11, and no connection for free.

uvicorn closes a connection on its own only when it has been idle *after a response*: its
keep-alive timer is armed in ``H11Protocol.on_response_complete`` and cancelled by the first byte
that arrives (uvicorn/protocols/http/h11_impl.py, 0.54). A connection that opens and never
completes its request line and headers is never closed, and each one holds a file descriptor;
at the process's limit ``accept()`` fails with EMFILE and every new client waits in the kernel's
backlog, webhooks included (Forgejo gives up after 5 s and never retries). Upstream knows:
Kludex/uvicorn#157 (further timeouts) and #1192 (a connection that sends nothing stays open).
Its ``limit_concurrency`` does not help: it answers 503 to a *complete* request once
``len(connections)`` reaches the limit, and connections still sending headers count, so a flood
of them would turn every webhook into a 503 instead of a wait. ASGI middleware cannot help either:
it runs only once the headers are in.

:class:`BoundedH11Protocol` (uvicorn's own h11 protocol, subclassed) adds what is missing, per
server, in this order of events:

1. A connection opens: it is *waiting for a request*, and its header deadline starts. The
   request line and headers must be complete ``header_timeout`` later; bytes trickling in do not
   move the deadline (that is the slowloris attack). When it passes, the connection is closed.
2. The headers are in: the connection is *busy* until its response is complete; the deadline is
   off (a test suite behind ``POST /api/v1/check`` may take minutes; the body's own size limit is
   the handler's business).
3. The response is complete: the connection waits again, this time under uvicorn's keep-alive
   timeout; the first byte of a next request starts a new header deadline.
4. Opening one more than ``max_connections`` first closes the connection that has been waiting
   longest for a request: real clients send their headers in one packet, so the oldest waiting
   connection is the least likely to be anyone's real request. When every other connection is
   busy, the new one is answered 503 and closed. So idle connections, however many, can never
   keep a webhook out, and HTTP can never use the descriptors that jobs and SQLite need.

``max_connections`` is held to half the process's soft ``RLIMIT_NOFILE`` (a warning says so),
so the other half stays for SQLite, git, job output and test suites whatever the configuration
says. Connections are closed with ``abort()``, not ``close()``: a client that never reads would
otherwise keep a closing connection (and its descriptor) forever.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("railguard.webserver")

#: Answer to a connection over the limit when every other one is busy with a request.
_BUSY_BODY = b"server busy: too many connections, try again\n"
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
         b"connection: close\r\ncontent-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)
#: How long a refused connection stays open for its client to read the 503.
_REFUSED_LINGER_SECONDS = 1.0
#: Connections closed for the limit are reported at most this often, not one line each.
_REPORT_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take and how many connections it may hold (``[gate]`` settings)."""

    #: Seconds from a connection's first byte (or its opening) to the end of its request headers.
    header_timeout: float = 10.0
    #: Seconds an idle connection stays open after a response (uvicorn's ``timeout_keep_alive``).
    keep_alive_timeout: float = 5.0
    #: Open connections at most; more close the one waiting longest for its request.
    max_connections: int = 512

    @classmethod
    def from_settings(cls, section: Any) -> ConnectionLimits:
        """From a settings section with ``header_timeout``, ``keep_alive_timeout`` (durations)
        and ``max_connections`` (``[gate]``)."""
        return cls(header_timeout=section.header_timeout.total_seconds(),
                   keep_alive_timeout=section.keep_alive_timeout.total_seconds(),
                   max_connections=section.max_connections)

    def effective_max_connections(self) -> int:
        """``max_connections``, held to half the soft descriptor limit of this process."""
        soft = _soft_descriptor_limit()
        return self.max_connections if soft is None else max(1, min(self.max_connections, soft // 2))

    def backlog(self) -> int:
        """The listen backlog, which asyncio also takes as how many connections to accept at once
        (``BaseSelectorEventLoop._accept_connection``): accepted connections are counted only a
        few loop turns later, so a batch is held to an eighth of the descriptors the connection
        limit leaves free, and a burst cannot reach the process's limit before the excess is closed."""
        soft = _soft_descriptor_limit()
        spare = 1 << 20 if soft is None else soft - self.effective_max_connections()
        return max(16, min(2048, spare // 8))


def _soft_descriptor_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


class _Book:
    """The connections of one server: the open ones, and the ones waiting for a request,
    longest-waiting first."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.header_timeout = limits.header_timeout
        self.max_connections = limits.effective_max_connections()
        self.open: set[BoundedH11Protocol] = set()
        self.waiting: OrderedDict[BoundedH11Protocol, None] = OrderedDict()
        self.closed_for_limit = 0
        self._reported_at = -_REPORT_EVERY_SECONDS

    def closed_one_for_limit(self) -> None:
        self.closed_for_limit += 1
        now = time.monotonic()
        if now - self._reported_at >= _REPORT_EVERY_SECONDS:
            self._reported_at = now
            log.warning("%d open connections (the limit): closing the ones waiting longest for their request "
                        "headers (%d so far)", self.max_connections, self.closed_for_limit)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection limit (see the module)."""

    book: ClassVar[_Book]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    # -- uvicorn's hooks ---------------------------------------------------------------------------
    # (The ignore: asyncio passes a Transport; uvicorn's H11Protocol narrows the argument the same way.)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.book.open.add(self)
        self._wait_for_request(deadline=True)
        if len(self.book.open) > self.book.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # cancels the keep-alive timer, parses, may start the request
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:
            # Still no complete request line and headers: the deadline runs from the first byte.
            if self._header_timer is None:
                self._wait_for_request(deadline=True)
        else:
            self._busy()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms the keep-alive timer, handles a pipelined request
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._wait_for_request(deadline=False)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._forget()

    # -- the states --------------------------------------------------------------------------------
    def _wait_for_request(self, *, deadline: bool) -> None:
        self.book.waiting[self] = None
        self.book.waiting.move_to_end(self)
        if deadline and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.book.header_timeout, self._header_deadline_passed)

    def _busy(self) -> None:
        self._cancel_header_timer()
        self.book.waiting.pop(self, None)

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("closing a connection from %s: no complete request headers within %gs",
                      self.client, self.book.header_timeout)
            self._drop()

    def _make_room(self) -> None:
        oldest = next((other for other in self.book.waiting if other is not self), None)
        if oldest is not None:
            oldest._drop()
            self.book.closed_one_for_limit()
            return
        # Every other connection is in the middle of a request: this one cannot be served now.
        # Its request is left unread (closing on unread data would reset the connection before
        # the client reads the 503), and the descriptor is released a second later at most.
        self._forget()
        self.transport.pause_reading()
        self.transport.write(_BUSY)
        self.transport.write_eof()
        self.loop.call_later(_REFUSED_LINGER_SECONDS, self.transport.abort)
        self.book.closed_one_for_limit()

    def _drop(self) -> None:
        self._forget()
        self.transport.abort()

    def _forget(self) -> None:
        self._cancel_header_timer()
        self.book.waiting.pop(self, None)
        self.book.open.discard(self)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedH11Protocol]:
    """A protocol class for one server (its connections are counted together)."""
    max_connections = limits.effective_max_connections()
    if max_connections < limits.max_connections:
        log.warning("max_connections %d is more than half this process's open-file limit (%s): using %d "
                    "(raise the limit with `ulimit -n` or LimitNOFILE=)", limits.max_connections,
                    _soft_descriptor_limit(), max_connections)
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"book": _Book(limits)})


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    """The keyword arguments that give ``uvicorn.run`` or ``uvicorn.Config`` railguard's protocol,
    timeouts and backlog (one protocol class per call: call it once per server)."""
    return {"http": bounded_protocol(limits), "ws": "none", "timeout_keep_alive": limits.keep_alive_timeout,
            "backlog": limits.backlog()}


def uvicorn_config(app: Any, *, host: str, port: int, limits: ConnectionLimits, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration with railguard's protocol and timeouts; ``options`` go to uvicorn."""
    return uvicorn.Config(app, host=host, port=port, **uvicorn_options(limits), **options)


class BackgroundServer:
    """uvicorn on a thread of its own, for a process whose main thread does other work (the
    daemon's job loop, which keeps its SIGTERM handling: uvicorn installs signal handlers only on
    the main thread). The socket is bound here, in the caller, so a port in use is an ``OSError``
    the caller can report, not a ``sys.exit`` on another thread."""

    def __init__(self, app: Any, *, host: str, port: int, limits: ConnectionLimits, name: str,
                 stop_timeout: float = 10.0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=limits.backlog())
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn_config(app, host=host, port=self.port, limits=limits, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=stop_timeout)
        self._server = uvicorn.Server(config)
        self._stop_timeout = stop_timeout
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=name, daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise OSError(f"the HTTP server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=self._stop_timeout + 5)
        self._socket.close()
