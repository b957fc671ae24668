"""The example app (examples/tasks-app/app.py) as a real process on 127.0.0.1, and an apprise
json:// receiver."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from local_http import JsonReceiver, free_port

APP = Path(__file__).resolve().parents[2] / "examples" / "tasks-app" / "app.py"


@dataclass
class App:
    process: subprocess.Popen[str]
    url: str


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """``start_app(db_path=None, commit=..., port=None)``: the app listening on a free port (SIGTERM at the end)."""
    started: list[App] = []

    def start(db_path: Path | None = None, commit: str = "abc123def4567890", port: int | None = None) -> App:
        if db_path is None:
            (tmp_path / "data").mkdir(exist_ok=True)
            db_path = tmp_path / "data" / "tasks.db"
        port = port or free_port()
        env = {**os.environ, "DB_PATH": str(db_path), "PORT": str(port), "CAPROVER_GIT_COMMIT_SHA": commit}
        env.pop("HOST", None)
        process = subprocess.Popen([sys.executable, str(APP)], env=env, stderr=subprocess.DEVNULL, text=True)
        app = App(process, f"http://127.0.0.1:{port}")
        started.append(app)
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, f"the example app exited {process.returncode}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return app
            except OSError:
                assert time.monotonic() < deadline, "the example app did not listen within 15 s"
                time.sleep(0.05)

    yield start
    for app in started:
        if app.process.poll() is None:
            app.process.send_signal(signal.SIGTERM)
            try:
                app.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.process.kill()
                app.process.wait()


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    server = JsonReceiver()
    yield server
    server.stop()
