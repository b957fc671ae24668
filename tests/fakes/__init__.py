"""Stand-ins for services that cannot run here (CapRover, Forgejo), following the documented
behaviour in shared/reference/forgejo-caprover.md, quirks included."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackFake:
    """A fake service's HTTP server on a free 127.0.0.1 port, served from a background thread.

    A subclass returns its request handler class from :meth:`request_handler` (the handler
    reaches the fake through ``fake_attribute``) and keeps its own state; this class only
    starts, stops and locates the server.
    """

    fake_attribute: str
    thread_name: str

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def request_handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError("a fake names its request handler class")

    def start(self) -> Self:
        handler = type("Handler", (self.request_handler(),), {self.fake_attribute: self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
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
