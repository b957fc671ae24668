"""Start the example app as a real process on 127.0.0.1, the way the demo and drills do."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app.py"


@dataclass
class RunningApp:
    process: subprocess.Popen[str]
    base_url: str
    db_path: Path

    def get(self, path: str) -> tuple[int, str]:
        return self.request("GET", path)

    def request(self, method: str, path: str, document: dict | None = None) -> tuple[int, str]:
        data = json.dumps(document).encode() if document is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def json(self, method: str, path: str, document: dict | None = None) -> tuple[int, dict]:
        status, body = self.request(method, path, document)
        return status, json.loads(body)

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as docker stop sends; returns the exit code and everything it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return self.process.returncode, stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., RunningApp]]:
    """``start_app(db_path=None, commit="abc123")``: the app listening on a free port; waits
    until it is bound, stops it (SIGTERM) at the end of the test."""
    started: list[RunningApp] = []

    def start(db_path: Path | None = None, commit: str = "abc123") -> RunningApp:
        if db_path is None:
            (tmp_path / "data").mkdir(exist_ok=True)
            db_path = tmp_path / "data" / "tasks.db"
        port = free_port()
        env = {**os.environ, "DB_PATH": str(db_path), "PORT": str(port), "CAPROVER_GIT_COMMIT_SHA": commit}
        env.pop("HOST", None)
        process = subprocess.Popen([sys.executable, str(APP)], env=env, stderr=subprocess.PIPE, text=True)
        app = RunningApp(process, f"http://127.0.0.1:{port}", db_path)
        started.append(app)
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the app exited {process.returncode}: {process.stderr.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return app
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the app did not listen within 15 s") from None
                time.sleep(0.05)

    yield start
    for app in started:
        app.stop()
