"""railguard.http against real HTTP servers on 127.0.0.1: redirects are answers unless a call
site asks to follow them, every request has a timeout, only what the call site allows is
retried, a loopback URL never goes through a proxy, and a body is streamed, not held."""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import pytest
from local_http import LocalServer, Request, free_port

from railguard import http
from railguard.errors import RailguardError


class FailsFirst(LocalServer):
    def __init__(self, failures: int, status: int = 503) -> None:
        self.failures, self.status = failures, status
        super().__init__()

    def respond(self, request: Request) -> tuple[int, str, bytes]:
        if self.failures > 0:
            self.failures -= 1
            return self.status, "text/plain", b"busy"
        return 200, "text/plain", b"done"


def _get(url: str, **kwargs: object) -> http.Response:
    options: dict[str, object] = {"service": "the test server", "where": "the test server", "timeout": 5.0,
                                  "proxy": "none"}
    options.update(kwargs)
    return http.request("GET", url, **options)  # type: ignore[arg-type]  # options are typed by request


@pytest.fixture
def location_server():
    """/start answers 302 with Location: /end; /end answers 200."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path == "/start":
                self.send_response(302)
                self.send_header("Location", "/end")
                payload = b"moved"
            else:
                self.send_response(200)
                payload = b"arrived"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_redirect_is_an_answer_unless_the_call_site_asks_to_follow_it(location_server) -> None:
    base, seen = location_server
    response = _get(base + "/start")
    assert (response.status, response.body, response.headers.get("Location")) == (302, b"moved", "/end")
    assert seen == ["/start"]
    followed = _get(base + "/start", follow_redirects=True)
    assert (followed.status, followed.body) == (200, b"arrived")
    assert seen == ["/start", "/start", "/end"]


def test_a_server_that_never_answers_times_out_with_one_error_and_a_hint() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    release = threading.Event()

    def hold() -> None:
        connection, _ = listener.accept()
        accepted.append(connection)
        release.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        with pytest.raises(http.Unreachable) as caught:
            _get(f"http://127.0.0.1:{listener.getsockname()[1]}/health",
                 timeout=http.Timeouts(connect=5.0, read=0.3), hint="Check the server")
    finally:
        release.set()
        thread.join(10)
        for connection in accepted:
            connection.close()
        listener.close()
    assert caught.value.kind == "timeout"
    assert caught.value.message == "cannot reach the test server at the test server: timed out after 0.3s"
    assert caught.value.hint == "Check the server"
    assert isinstance(caught.value, RailguardError)


def test_connection_refused_names_the_place_given_never_the_url() -> None:
    port = free_port()
    with pytest.raises(http.Unreachable) as caught:
        http.request("POST", f"http://127.0.0.1:{port}/ping/secret-uuid?rid=1", service="the ping server",
                     where="$HC_URL", timeout=5.0, proxy="environment", body=b"log",
                     hints={"refused": "Is it running?"}, hint="generic")
    assert (caught.value.kind, caught.value.attempts) == ("refused", 1)
    assert caught.value.message == "cannot reach the ping server at $HC_URL: connection refused"
    assert caught.value.hint == "Is it running?"
    assert "secret-uuid" not in caught.value.message


def test_a_url_that_is_not_http_is_one_error_too() -> None:
    with pytest.raises(http.Unreachable) as caught:
        _get("ftp://127.0.0.1/x")
    assert caught.value.kind == "url"


def test_only_the_statuses_the_call_site_names_are_retried_with_the_injected_backoff() -> None:
    server = FailsFirst(2)
    slept: list[float] = []
    try:
        response = _get(server.base + "/x", retry=http.Backoff(attempts=3, first=1.0, cap=20.0),
                        retry_statuses={503}, sleep=slept.append)
        assert (response.status, response.body, response.attempts, slept) == (200, b"done", 3, [1.0, 2.0])
        server.failures = 2
        once = _get(server.base + "/x", retry=http.Backoff(attempts=3), retry_statuses={429}, sleep=slept.append)
        assert (once.status, once.attempts) == (503, 1)
        assert len(server.requests) == 4
    finally:
        server.stop()


def test_retries_end_with_the_last_answer() -> None:
    server = FailsFirst(10, status=429)
    slept: list[float] = []
    try:
        response = _get(server.base + "/x", retry=http.Backoff(attempts=2, first=0.5), retry_statuses={429},
                        sleep=slept.append)
        assert (response.status, response.attempts, slept, len(server.requests)) == (429, 3, [0.5, 1.0], 3)
    finally:
        server.stop()


def test_a_failure_to_connect_is_retried_only_when_the_call_site_says_so() -> None:
    url = f"http://127.0.0.1:{free_port()}/x"
    slept: list[float] = []
    with pytest.raises(http.Unreachable) as once:
        _get(url, retry=http.Backoff(attempts=2), retry_statuses={503}, sleep=slept.append)
    assert (once.value.attempts, slept) == (1, [])
    with pytest.raises(http.Unreachable) as thrice:
        _get(url, retry=http.Backoff(attempts=2, first=0.5), retry_unreachable=True, sleep=slept.append)
    assert (thrice.value.attempts, slept) == (3, [0.5, 1.0])


def test_a_loopback_url_never_goes_through_the_environments_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, target = LocalServer(), LocalServer()
    try:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.base)
        monkeypatch.setenv("http_proxy", proxy.base)
        response = _get(target.base + "/health", proxy="environment")
        assert response.status == 200
        assert (len(target.requests), len(proxy.requests)) == (1, 0)
        # A name that is not loopback goes to the proxy (which answers for it: nothing leaves the host).
        through = _get("http://captain.example.invalid/api/v2/login", proxy="environment")
        assert through.status == 200
        assert len(proxy.requests) == 1 and proxy.requests[0].headers["Host"] == "captain.example.invalid"
    finally:
        proxy.stop()
        target.stop()


class CountingReceiver:
    """A raw HTTP server that reads a body with a small receive buffer and counts what arrived,
    so a test can see how far the sender ever ran ahead of it."""

    RECEIVE_BUFFER = 64 * 1024

    def __init__(self) -> None:
        self.received = 0
        self.digest = hashlib.sha256()
        self.headers = b""
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECEIVE_BUFFER)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/upload"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(4096)
            self.headers, _, rest = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":", 1)[1] for line in self.headers.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            self._count(rest)
            while self.received < length:
                chunk = connection.recv(16 * 1024)
                if not chunk:
                    break
                self._count(chunk)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def _count(self, chunk: bytes) -> None:
        with self.lock:
            self.received += len(chunk)
            self.digest.update(chunk)


def _kernel_buffer_bound() -> int:
    """The most bytes that can be in flight between sender and receiver: the sender's largest
    send buffer plus the receiver's (fixed, doubled by the kernel) receive buffer."""
    send_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return send_max + 4 * CountingReceiver.RECEIVE_BUFFER


def test_a_streamed_body_is_consumed_chunk_by_chunk_as_the_server_reads_it() -> None:
    receiver = CountingReceiver()
    bound = _kernel_buffer_bound() + 2 * http.CHUNK
    chunk_count = 8 * bound // http.CHUNK  # eight times what the kernel can hold in flight
    produced = 0
    ahead: list[int] = []
    sent = hashlib.sha256()

    def chunks():
        nonlocal produced
        for index in range(chunk_count):
            with receiver.lock:
                ahead.append(produced - receiver.received)
            chunk = index.to_bytes(8, "big") * (http.CHUNK // 8)
            sent.update(chunk)
            produced += len(chunk)
            yield chunk

    length = chunk_count * http.CHUNK
    response = http.request("POST", receiver.url, service="the receiver", where="the receiver", timeout=60.0,
                            proxy="none", body=http.Stream(length, chunks))
    receiver.thread.join(30)
    assert response.status == 200
    assert b"Content-Length: %d" % length in receiver.headers
    assert b"chunked" not in receiver.headers.lower()
    assert (receiver.received, receiver.digest.hexdigest()) == (length, sent.hexdigest())
    # The sender never held more than the kernel's buffers beyond what the server had read:
    # memory does not grow with the body.
    assert max(ahead) <= bound < length // 4


def test_multipart_streams_a_file_from_disk_with_its_exact_length(tmp_path: Path) -> None:
    tar = tmp_path / "source.tar"
    tar.write_bytes(bytes(range(256)) * 1000 + b"end")
    receiver = LocalServer()
    try:
        body, content_type = http.multipart({"gitHash": "abc123"}, {"sourceFile": ("source.tar", "application/x-tar",
                                                                                  tar)})
        response = http.request("POST", receiver.base + "/upload", service="s", where="w", timeout=10.0,
                                proxy="none", body=body, headers={"Content-Type": content_type})
        assert response.status == 200
        posted = receiver.requests[0]
        assert int(posted.headers["Content-Length"]) == body.length == len(posted.body)
        import email.parser
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + posted.body)
        parts = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                 for part in message.get_payload()}
        assert parts == {"gitHash": b"abc123", "sourceFile": tar.read_bytes()}
    finally:
        receiver.stop()


def test_a_streamed_body_is_produced_afresh_for_each_retry() -> None:
    server = FailsFirst(1, status=503)
    try:
        body, content_type = http.multipart({"a": "1"}, {"f": ("f.bin", "application/octet-stream", b"x" * 1000)})
        response = http.request("POST", server.base + "/x", service="s", where="w", timeout=10.0, proxy="none",
                                body=body, headers={"Content-Type": content_type}, retry=http.Backoff(1),
                                retry_statuses={503}, sleep=lambda _: None)
        assert response.status == 200
        assert [len(r.body) for r in server.requests] == [body.length, body.length]
    finally:
        server.stop()


def test_a_tls_failure_is_one_error_with_its_kind() -> None:
    plain = LocalServer()  # speaks plain HTTP: the TLS handshake fails
    try:
        with pytest.raises(http.Unreachable) as caught:
            _get(f"https://127.0.0.1:{plain.port}/x", hint="Check the certificate")
        assert caught.value.kind == "tls"
        assert caught.value.message.startswith("cannot reach the test server at the test server: TLS error: ")
        assert caught.value.hint == "Check the certificate"
    finally:
        plain.stop()
