"""Stand-ins for services that cannot run here (CapRover, Forgejo), following the documented
behaviour in shared/reference/forgejo-caprover.md, quirks included."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class PlainText(str):
    """A reply a fake sends as it is (``text/html``, as express's ``res.send(string)``), not as JSON."""


class _JsonHandler(BaseHTTPRequestHandler):
    """Hands every request to the fake's ``handle`` and sends back the JSON it returns."""

    fake: LoopbackFake
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        status, document = self.fake.handle(self.command, self.path, headers, body)
        if isinstance(document, PlainText):
            payload, content_type = document.encode(), "text/html; charset=utf-8"
        else:
            payload, content_type = json.dumps(document).encode(), self.fake.content_type
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackFake:
    """A fake JSON service on a free 127.0.0.1 port, served from a background thread.

    A subclass implements ``handle(method, path, headers, body) -> (status, document)`` and keeps
    its own state; this class only starts, stops and locates the server.
    """

    content_type = "application/json"
    thread_name: str
    #: Where to listen: a free port on 127.0.0.1 unless a subclass says otherwise (the CapRover
    #: CLI conformance test binds 127.0.0.1:80 inside its own network namespace).
    host: str = "127.0.0.1"
    port: int = 0

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        raise NotImplementedError("a fake answers its own requests")

    def start(self) -> Self:
        handler = type("Handler", (_JsonHandler,), {"fake": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
