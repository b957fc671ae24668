"""railguard.webserver: uvicorn's h11 protocol with a header deadline and a connection limit,
tried with real sockets on 127.0.0.1 against a real uvicorn server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from railguard.webserver import BackgroundServer, ConnectionLimits

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass
class Served:
    port: int
    #: ``GET /busy`` answers once this is set.
    release: threading.Event = field(default_factory=threading.Event)
    #: Released once per ``GET /busy`` request the app has begun to handle.
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def wait_busy(self, count: int) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=30), "the busy request did not reach the app"


@contextlib.contextmanager
def serving(limits: ConnectionLimits) -> Iterator[Served]:
    """``GET /`` answers at once; ``GET /busy`` holds its connection until released."""
    served = Served(port=0)

    async def index(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def busy(request: Request) -> PlainTextResponse:
        served.entered.release()
        await anyio.to_thread.run_sync(served.release.wait, 60)
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/", index), Route("/busy", busy)])
    server = BackgroundServer(app, host="127.0.0.1", port=0, limits=limits, name="test-http").start()
    served.port = server.port
    try:
        yield served
    finally:
        served.release.set()
        server.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def closed_by_server(connection: socket.socket, timeout: float = 30) -> bool:
    """True once the server has closed the connection (EOF or reset) within ``timeout``; data
    that arrives first (a response) is read past."""
    connection.settimeout(timeout)
    try:
        while connection.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def read_until(connection: socket.socket, marker: bytes) -> bytes:
    """Read a response until ``marker`` (its body) has arrived; headers and body may come apart."""
    connection.settimeout(30)
    received = b""
    while marker not in received:
        chunk = connection.recv(4096)
        assert chunk, f"closed before {marker!r}: {received!r}"
        received += chunk
    return received


def get(port: int, path: str = "/") -> bytes:
    with connect(port) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := connection.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def test_headers_trickled_a_byte_at_a_time_do_not_extend_the_header_deadline():
    with serving(ConnectionLimits(header_timeout=1.0)) as served:
        port = served.port
        trickler = connect(port)
        started = time.monotonic()
        closed = False
        # One byte every 0.2 s would keep a header line going for minutes.
        for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 300:
            try:
                trickler.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
        assert closed or closed_by_server(trickler), "a trickling client kept its connection"
        assert time.monotonic() - started < 60
        trickler.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout():
    with serving(ConnectionLimits(header_timeout=0.5)) as served:
        port = served.port
        with connect(port) as silent:
            assert closed_by_server(silent)
        assert get(port).endswith(b"ok")


def test_a_kept_alive_connection_that_starts_a_request_and_stops_is_closed():
    with serving(ConnectionLimits(header_timeout=0.5, keep_alive_timeout=60)) as served:
        port = served.port
        with connect(port) as client:
            client.sendall(REQUEST)
            assert read_until(client, b"ok").endswith(b"ok")
            # Kept alive for a minute; half a request stops the keep-alive timer, not the header deadline.
            client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert closed_by_server(client, timeout=30)


def test_at_the_limit_the_connection_waiting_longest_makes_room_and_busy_ones_are_kept():
    with serving(ConnectionLimits(header_timeout=60, max_connections=4)) as served:
        busy = connect(served.port)
        busy.sendall(b"GET /busy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        served.wait_busy(1)
        idle = [connect(served.port) for _ in range(3)]
        for connection in idle:
            connection.sendall(b"GET / HTTP/1.1\r\n")
        # A fifth client gets its answer: the idle connection waiting longest was closed for it.
        assert get(served.port).endswith(b"ok")
        assert closed_by_server(idle[0])
        # The busy request, older than all of them, was kept: it still gets its answer.
        served.release.set()
        read_until(busy, b"done")
        for connection in [busy, *idle]:
            connection.close()


def test_when_every_connection_is_busy_one_more_is_answered_503():
    with serving(ConnectionLimits(header_timeout=60, max_connections=2)) as served:
        busy = [connect(served.port) for _ in range(2)]
        for connection in busy:
            connection.sendall(b"GET /busy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        served.wait_busy(2)
        answer = get(served.port)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable") and answer.endswith(b"try again\n"), answer
        served.release.set()
        for connection in busy:
            read_until(connection, b"done")
            connection.close()


def test_the_connection_limit_is_held_to_half_the_descriptor_limit(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 4096))
    assert ConnectionLimits(max_connections=512).effective_max_connections() == 128
    assert ConnectionLimits(max_connections=100).effective_max_connections() == 100
    assert ConnectionLimits(max_connections=512).backlog() == 16
