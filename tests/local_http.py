"""Real HTTP servers on 127.0.0.1 for the notification, monitor, smoke and heartbeat tests:
an apprise ``json://`` receiver that counts messages, a target switched up and down, and a
healthchecks-style ping receiver. Each binds a free port and stops when the test ends."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def free_port() -> int:
    """A port nothing listens on (bound then released): a service that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 whose answer comes from :meth:`respond`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query), body, dict(self.headers))
                with outer._lock:
                    outer.requests.append(request)
                status, content_type, payload, *extra = outer.respond(request)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def respond(self, request: Request) -> tuple[int, str, bytes]:
        return 200, "text/plain", b"OK"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Redirector(LocalServer):
    """Answers every path but ``target_path`` with a 302 to ``location`` (by default
    ``target_path`` on this server), and ``target_path`` with ``body``."""

    def __init__(self, target_path: str = "/elsewhere", body: bytes = b"ok") -> None:
        self.target_path, self.body, self.location = target_path, body, ""
        super().__init__()
        self.location = self.base + target_path

    def respond(self, request: Request) -> tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]:
        if request.path == self.target_path:
            return 200, "text/plain", self.body
        return 302, "text/plain", b"moved", {"Location": self.location}


class JsonReceiver(LocalServer):
    """What apprise's ``json://host:port/path`` posts: ``{version, title, message, type}``."""

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/notify"

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.json() for r in self.requests if r.method == "POST"]

    def titles(self) -> list[str]:
        return [m["title"] for m in self.messages]


class SwitchableTarget(LocalServer):
    """``/health`` answers 200 ``ok`` while ``up``, else 503; ``delay`` slows every answer."""

    def __init__(self) -> None:
        self.up = True
        self.body = b"ok"
        self.delay = 0.0
        super().__init__()

    def respond(self, request: Request) -> tuple[int, str, bytes]:
        if self.delay:
            time.sleep(self.delay)
        if self.up:
            return 200, "text/plain", self.body
        return 503, "text/plain", b"database unavailable"

    @property
    def health_url(self) -> str:
        return f"{self.base}/health"


class PingReceiver(LocalServer):
    """A healthchecks.io-style ping endpoint; ``fail_next`` answers that many 500s first."""

    def __init__(self) -> None:
        self.fail_next = 0
        self.status = 200
        super().__init__()

    def respond(self, request: Request) -> tuple[int, str, bytes]:
        if self.fail_next > 0:
            self.fail_next -= 1
            return 500, "text/plain", b"try again"
        return self.status, "text/plain", b"OK"

    def url_for(self, uuid: str = "5f0c6a1e-0000-4000-8000-00000000abcd") -> str:
        return f"{self.base}/ping/{uuid}"

    def signals(self) -> list[str]:
        """The last path segment of each answered ping: start, <uuid> (success), fail, 0, 2..."""
        with self._lock:
            return [r.path.rsplit("/", 1)[-1] for r in self.requests]
