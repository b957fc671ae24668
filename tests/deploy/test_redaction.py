"""A password CapRover echoes back escaped is scrubbed at every boundary (issue 14, item 3).

The password holds ``"``, ``\\``, ``%``, a space and ``&``. The CapRover below echoes the login
request it received (JSON, so ``"`` and ``\\`` come back escaped) and the password URL-encoded,
as a server or a proxy in front of it may do in an error: the literal password is never in the
echo, so scrubbing only the literal misses it. It must not appear, in any of these forms, on
stderr, in ``--json``, in ``status``, in ``deploys.sqlite3`` or in the "deploy FAILED"
notification.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from fakes.caprover import STATUS_ERROR_GENERIC, FakeCapRover, _envelope
from local_http import JsonReceiver

from railguard.errors import ExitCode

PASSWORD = 'pa"ss\\w0rd 100% & more-never-shown'


def forms(secret: str) -> list[str]:
    """How the password may come back: as is, JSON-escaped, URL-encoded."""
    return [secret, json.dumps(secret)[1:-1], urllib.parse.quote(secret), urllib.parse.quote(secret, safe=""),
            urllib.parse.quote_plus(secret)]


class EchoingCapRover(FakeCapRover):
    """Not a quirk of CapRover's source: the worst echo redaction must survive. The upload is
    refused with a description that quotes the login body as received and the password
    URL-encoded (a proxy's or a debug build's error page does this kind of thing)."""

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
               call: Any) -> dict[str, Any]:
        if method == "POST" and path.startswith("/api/v2/user/apps/appData/"):
            login = next(c.body for c in self.calls if c.path == "/api/v2/login").decode()
            return _envelope(STATUS_ERROR_GENERIC, f"Build refused for session {login} "
                                                   f"(form password={urllib.parse.quote_plus(self.password)}, "
                                                   f"url ?p={urllib.parse.quote(self.password)})")
        return super()._route(method, path, query, headers, body, call)


@pytest.fixture
def echoing_captain() -> Any:
    fake = EchoingCapRover(password=PASSWORD)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def test_an_echoed_escaped_password_is_scrubbed_everywhere_it_could_leave(run_cli, write_config, echoing_captain,
                                                                          repo, tmp_path: Path) -> None:
    echoing_captain.add_app("tasks")
    owner = JsonReceiver()
    try:
        env = {"CAPROVER_PASSWORD": PASSWORD, "RAILGUARD_NOTIFY_URLS": owner.url}
        config = write_config(mode="login", caprover_url=echoing_captain.url)
        failed = run_cli("--config", config, "deploy", env=env)
        as_json = run_cli("--config", config, "deploy", "--json", env=env)
        status = run_cli("--config", config, "status", env=env)
        status_json = run_cli("--config", config, "status", "--json", env=env)
        messages = owner.messages
    finally:
        owner.stop()
    assert failed.exit_code == as_json.exit_code != ExitCode.OK, failed.stderr
    assert failed.stderr.startswith("error: ") and "Build refused for session" in failed.stderr, failed.stderr
    document = json.loads(as_json.stdout)
    assert document["ok"] is False and "Build refused" in document["error"]
    with sqlite3.connect(tmp_path / "state" / "deploys.sqlite3") as db:
        stored = json.dumps(db.execute("SELECT * FROM deploys").fetchall())
    assert "Build refused" in stored and len(messages) == 2, (stored, messages)
    assert "Build refused" in status.stdout and "Build refused" in status_json.stdout, status.stdout
    surfaces = {"stderr": failed.stderr, "--json": as_json.stdout + as_json.stderr,
                "status": status.stdout + status.stderr, "status --json": status_json.stdout + status_json.stderr,
                "deploys.sqlite3": stored, "notification": json.dumps(messages, ensure_ascii=False)}
    assert {where: [form for form in forms(PASSWORD) if form in text] for where, text in surfaces.items()} == \
        {where: [] for where in surfaces}
