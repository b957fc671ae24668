"""``POST /api/monitor/NAME/pause|resume``: the daemon's control API for the monitor.

The routes on a real server on 127.0.0.1 (the daemon's server class), requests with urllib, the
pause checked where the monitor reads it (its SQLite store); one test runs the real ``railguard
daemon`` and pauses through it. A state change always needs the token, loopback or not.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from starlette.applications import Starlette

from railguard.config import Settings
from railguard.monitor import MonitorStore
from railguard.secrets import Secret
from railguard.web.app import Access
from railguard.web.monitor_api import monitor_api_routes
from railguard.webserver import BackgroundServer, ConnectionLimits

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
TOKEN = "pause-token-3f9c1e7a"


def settings_for(tmp_path: Path) -> Settings:
    return Settings.model_validate({"state_dir": str(tmp_path / "state"),
                                    "apps": {"tasks": {"url": "http://127.0.0.1:9/"}}})


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Callable[[Access], str]]:
    servers: list[BackgroundServer] = []

    def start(access: Access) -> str:
        app = Starlette(routes=monitor_api_routes(settings_for(tmp_path), access, lambda: NOW))
        server = BackgroundServer(app, host="127.0.0.1", port=0, limits=ConnectionLimits(),
                                  name="railguard-monitor-api-test").start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop()


def post(url: str, body: bytes | None = None, authorization: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body if body is not None else b"", method="POST")
    if authorization:
        request.add_header("Authorization", authorization)
    if body:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def pauses(tmp_path: Path) -> list[object]:
    store = MonitorStore(tmp_path / "state" / "monitor.sqlite3")
    try:
        return list(store.pauses(NOW))
    finally:
        store.close()


def test_a_pause_with_the_token_is_recorded_and_answered_as_json(tmp_path: Path, api) -> None:  # type: ignore[no-untyped-def]
    base = api(Access(Secret(TOKEN)))
    status, answer = post(f"{base}/api/monitor/tasks/pause", b'{"for": "1h", "reason": "moving the disk"}',
                          f"Bearer {TOKEN}")
    assert status == 200
    assert answer == {"ok": True, "name": "tasks",
                      "paused": {"name": "tasks", "since": NOW.isoformat(),
                                 "until": (NOW + timedelta(hours=1)).isoformat(), "reason": "moving the disk"}}
    pause, = pauses(tmp_path)
    assert (pause.name, pause.until, pause.reason) == ("tasks", NOW + timedelta(hours=1), "moving the disk")
    status, answer = post(f"{base}/api/monitor/tasks/resume", None, f"Bearer {TOKEN}")
    assert status == 200 and answer["was_paused"] is True
    assert pauses(tmp_path) == []
    status, answer = post(f"{base}/api/monitor/tasks/resume", None, f"Bearer {TOKEN}")
    assert (status, answer["was_paused"], answer["pause"]) == (200, False, None)


def test_an_empty_body_pauses_until_resumed(tmp_path: Path, api) -> None:  # type: ignore[no-untyped-def]
    base = api(Access(Secret(TOKEN)))
    status, answer = post(f"{base}/api/monitor/tasks/pause", None, f"Bearer {TOKEN}")
    assert status == 200 and answer["paused"]["until"] is None  # type: ignore[index]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0000", f"Bearer {TOKEN}x",
                                           "Basic " + base64.b64encode(f"any:{TOKEN}".encode()).decode()])
def test_a_pause_without_the_token_is_refused_and_changes_nothing(
        tmp_path: Path, api, authorization: str | None) -> None:  # type: ignore[no-untyped-def]
    base = api(Access(Secret(TOKEN)))
    for action in ("pause", "resume"):
        status, answer = post(f"{base}/api/monitor/tasks/{action}", b'{"for": "1h"}' if action == "pause" else None,
                              authorization)
        assert status == 401
        assert answer == {"ok": False, "error": "a change to the monitor needs the token",
                          "hint": "Send Authorization: Bearer $TOKEN (the daemon's $RAILGUARD_WEB_TOKEN)"}
    assert pauses(tmp_path) == []


def test_without_a_token_configured_even_loopback_cannot_pause(tmp_path: Path, api) -> None:  # type: ignore[no-untyped-def]
    base = api(Access(None))  # a loopback daemon without $RAILGUARD_WEB_TOKEN: pages open, changes refused
    status, answer = post(f"{base}/api/monitor/tasks/pause", None, "Bearer anything-at-all")
    assert status == 401
    assert answer["error"] == "this daemon has no token, and a change to the monitor needs one"
    assert not (tmp_path / "state" / "monitor.sqlite3").exists()


@pytest.mark.parametrize("name, body, status, error", [
    ("nosuch", None, 404, "the monitor has no app or target named 'nosuch'"),
    ("tasks", b"not json", 400, "the request body is not JSON"),
    ("tasks", b"[1, 2]", 400, "the request body is not a JSON object"),
    ("tasks", b'{"for": "1h", "until": "tomorrow"}', 400, "unknown field(s) in the request body: until"),
    ("tasks", b'{"for": "soon"}', 400,
     "for: expected a duration such as '30s', '5m', '1h30m' or '2d', got 'soon'"),
    ("tasks", b'{"for": "0s"}', 400, "a pause must last longer than 0s, not 0s"),
    ("tasks", b'{"reason": 7}', 400, "reason: expected a string"),
    ("tasks", b'{"reason": "two\\nlines"}', 400, "the reason must be one line of at most 200 characters"),
    ("tasks", b'{"reason": "' + b"x" * 5000 + b'"}', 400, "the request body is larger than 4096 bytes"),
])
def test_a_bad_pause_request_is_refused_with_the_reason_and_changes_nothing(
        tmp_path: Path, api, name: str, body: bytes | None, status: int, error: str) -> None:  # type: ignore[no-untyped-def]
    base = api(Access(Secret(TOKEN)))
    got, answer = post(f"{base}/api/monitor/{name}/pause", body, f"Bearer {TOKEN}")
    assert (got, answer["ok"], answer["error"]) == (status, False, error)
    assert answer["hint"]
    assert not (tmp_path / "state" / "monitor.sqlite3").exists() or pauses(tmp_path) == []
