"""The example app (examples/tasks-app/app.py) as a real process on 127.0.0.1, and an apprise
json:// receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from example_app import ExampleApp, start_example_app
from local_http import JsonReceiver, free_port


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., ExampleApp]]:
    """``start_app(db_path=None, commit=..., port=None)``: the app listening on a free port (SIGTERM at the end)."""
    started: list[ExampleApp] = []

    def start(db_path: Path | None = None, commit: str = "abc123def4567890", port: int | None = None) -> ExampleApp:
        if db_path is None:
            (tmp_path / "data").mkdir(exist_ok=True)
            db_path = tmp_path / "data" / "tasks.db"
        app = start_example_app(db_path, port or free_port(), commit)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    server = JsonReceiver()
    yield server
    server.stop()
