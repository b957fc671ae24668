"""Who may read the status page: the token, the loopback rule, the public page, and no secret anywhere."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from waiting import wait_until
from web.conftest import (COMMIT_MESSAGE, DEPLOY_COMMITS, DRILL_OUTPUT, GATE_SUMMARY, HEARTBEAT_VARS, PING_UUID,
                          Site, build_site)
from web.test_pages import get

from railguard.config import Settings
from railguard.deploy.state import DeployState, state_path
from railguard.errors import ConfigError, ExitCode
from railguard.values import Listen
from railguard.web.app import Access

TOKEN = "web-token-0123456789abcdef"
PAGES = ("/", "/apps/tasks", "/api/overview", "/api/apps/tasks")


def basic(password: str, user: str = "me") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def with_token(site: Site, *, public: bool = False) -> Access:
    return Access.for_listen(Listen.parse("127.0.0.1:9181", key="web.listen"), site.settings.model_copy(
        update={"web": site.settings.web.model_copy(update={"public": public})}), {"RAILGUARD_WEB_TOKEN": TOKEN})


def test_with_a_token_every_page_answers_401_without_it_and_says_nothing_else(site: Site, serve: Callable[..., str]
                                                                            ) -> None:
    base = serve(site, with_token(site))
    for path in (*PAGES, "/public", "/api/public"):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, basic("wrong"),
                        {"Authorization": "Basic !!notbase64"}, {"Authorization": TOKEN}):
            status, body, answer = get(base + path, headers)
            assert status == 401, (path, headers)
            assert body == "401: this page needs the status page's token (RAILGUARD_WEB_TOKEN)\n"
            assert answer["www-authenticate"] == 'Basic realm="railguard", charset="UTF-8"'


def test_the_token_opens_every_page_as_bearer_or_as_the_basic_password(site: Site, serve: Callable[..., str]) -> None:
    base = serve(site, with_token(site))
    for path in PAGES:
        assert get(base + path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200, path
        assert get(base + path, basic(TOKEN))[0] == 200, path


def test_the_public_page_is_open_when_asked_and_shows_uptime_only(site: Site, serve: Callable[..., str]) -> None:
    base = serve(site, with_token(site, public=True))
    status, html, _ = get(base + "/public")
    assert status == 200 and "uptime 24h" in html and "91.67%" in html and "5m" in html
    _, api, _ = get(base + "/api/public")
    for text in (html, api):
        for private in ("127.0.0.1:9", "HTTP 503", DEPLOY_COMMITS[0][:12], "tasks-2026", "backup", "deploy",
                        DRILL_OUTPUT, TOKEN, COMMIT_MESSAGE, GATE_SUMMARY, PING_UUID, "heartbeat", "gate", "run #",
                        *HEARTBEAT_VARS.values()):
            assert private not in text, private
    assert get(base + "/", {})[0] == 401  # the rest still needs the token


def test_no_page_shows_a_secret_or_a_test_log(tmp_path: Path, serve: Callable[..., str]) -> None:
    site = build_site(tmp_path)
    # A deploy whose CapRover answer echoed the app token (the history scrubs what the process knows).
    secret = "caprover-app-token-abcdef123456"
    os.environ["RAILGUARD_TEST_TOKEN"] = secret
    try:
        from railguard.secrets import read_secret

        read_secret("RAILGUARD_TEST_TOKEN")
        history = DeployState(state_path(site.settings.state_dir, None))
        deploy = history.start(app="tasks", caprover_app="tasks", kind="deploy", ref="main", git_hash="d" * 40,
                               now=site.now)
        history.finish(deploy, result="failed", now=site.now, detail=f"<script>alert(1)</script> token={secret}")
    finally:
        del os.environ["RAILGUARD_TEST_TOKEN"]
    base = serve(site, with_token(site))
    for path in PAGES:
        _, text, _ = get(base + path, basic(TOKEN))
        assert secret not in text and TOKEN not in text and DRILL_OUTPUT not in text, path
        assert COMMIT_MESSAGE not in text and GATE_SUMMARY not in text, path  # a gate run's message and log
        assert "<script>" not in text or path.startswith("/api/"), path  # JSON carries the text as it is
    _, html, _ = get(base + "/apps/tasks", basic(TOKEN))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; token=***" in html


def test_no_page_shows_a_ping_url_even_one_written_into_heartbeats_json(
        site: Site, serve: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from railguard.secrets import known_secrets

    # The daemon's environment holds the ping URLs; an older railguard (or a hand) left one in a
    # failure reason. This one was never read by this process: only the page can scrub it.
    fresh = f"http://127.0.0.1:9/ping/{uuid.uuid4()}"
    assert fresh not in known_secrets()
    for job, var in HEARTBEAT_VARS.items():
        monkeypatch.setenv(var, fresh if job == "replicate" else site.ping_urls[job])
    path = site.settings.state_dir / "heartbeats.json"
    state = json.loads(path.read_text())
    state["tasks/replicate"] = {"pings": 1, "failures": 1, "last_failure": {
        "at": site.now.isoformat(), "signal": "start", "reason": f"connection refused by {fresh}/start"}}
    path.write_text(json.dumps(state))
    base = serve(site, with_token(site, public=True))
    for page in (*PAGES, "/public", "/api/public"):
        status, text, _ = get(base + page, basic(TOKEN))
        assert status == 200, page
        assert fresh not in text and PING_UUID not in text, page
        assert not any(url in text for url in site.ping_urls.values()), page
    _, html, _ = get(base + "/apps/tasks", basic(TOKEN))
    assert "<code>$TASKS_REPLICATE_PING_URL</code>" in html
    assert "failed: connection refused by ***/start (ping start)" in html


def test_a_listen_address_off_loopback_needs_the_token() -> None:
    settings = Settings()
    with pytest.raises(ConfigError) as refused:
        Access.for_listen(Listen.parse("0.0.0.0:9181", key="web.listen"), settings, {})
    assert refused.value.exit_code == ExitCode.USAGE
    assert refused.value.message == ("web.listen = '0.0.0.0:9181' is not a loopback address and $RAILGUARD_WEB_TOKEN "
                                     "is not set: anyone who reaches it could read every app's backups, deploys "
                                     "and drills")
    assert Access.for_listen(Listen.parse("0.0.0.0:9181", key="web.listen"), settings, {"RAILGUARD_WEB_TOKEN": TOKEN}).token is not None
    for loopback in ("127.0.0.1:9181", "localhost:9181", "[::1]:9181", "127.0.0.2:9181"):
        assert Access.for_listen(Listen.parse(loopback, key="web.listen"), settings, {}).token is None, loopback


def test_the_token_may_come_from_a_file(tmp_path: Path, site: Site, serve: Callable[..., str]) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    access = Access.for_listen(Listen.parse("0.0.0.0:9181", key="web.listen"), site.settings, {"RAILGUARD_WEB_TOKEN_FILE": str(path)})
    base = serve(site, access)
    assert get(base + "/", basic(TOKEN))[0] == 200 and get(base + "/", {})[0] == 401


def test_railguard_web_refuses_a_network_address_without_the_token(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("web", "--listen", "0.0.0.0:9181", env={"RAILGUARD_WEB_TOKEN": ""})
    assert result.exit_code == ExitCode.USAGE
    assert "error: --listen = '0.0.0.0:9181' is not a loopback address and $RAILGUARD_WEB_TOKEN is not set" \
        in result.stderr
    assert "hint: Export RAILGUARD_WEB_TOKEN (or RAILGUARD_WEB_TOKEN_FILE), or listen on 127.0.0.1 behind a proxy" \
        in result.stderr


def test_the_daemon_refuses_to_start_on_a_network_address_without_the_token(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "railguard.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\ndatabase = "{tmp_path / "tasks.db"}"\n'
        f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\n'
        '[apps.tasks.schedule]\nbackup = "every 1s"\n[daemon]\nlisten = "0.0.0.0:0"\nmonitor = false\n')
    result = run_cli("--config", tmp_path / "railguard.toml", "daemon", env={"RAILGUARD_WEB_TOKEN": ""})
    assert result.exit_code == ExitCode.USAGE
    assert "error: daemon.listen = '0.0.0.0:0' is not a loopback address and $RAILGUARD_WEB_TOKEN is not set" \
        in result.stderr
    assert not (tmp_path / "backups").exists()  # refused before the first job


def test_railguard_web_serves_the_page_and_stops_on_sigterm(tmp_path: Path) -> None:
    site = build_site(tmp_path)
    config = tmp_path / "railguard.toml"
    app = site.settings.apps["tasks"]
    config.write_text(f'state_dir = "{site.settings.state_dir}"\n[apps.tasks]\ndatabase = "{app.database}"\n'
                      f'[apps.tasks.backup]\ndirectory = "{app.backup.directory}"\n')
    env = {**os.environ, "RAILGUARD_WEB_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config), "web",
                                "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("railguard web: http://127.0.0.1:") and line.endswith("/ (token required)\n"), line
        base = line.split()[2].rstrip("/")
        assert wait_until(lambda: get(base + "/", {})[0] == 401, "the page to answer")
        status, body, _ = get(base + "/api/overview", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and [app["name"] for app in json.loads(body)["apps"]] == ["tasks"]
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0


def test_the_daemon_serves_the_pages_behind_the_token_beside_an_open_healthz(tmp_path: Path) -> None:
    import socket

    site = build_site(tmp_path)
    app = site.settings.apps["tasks"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "railguard.toml"
    config.write_text(f'state_dir = "{site.settings.state_dir}"\n[apps.tasks]\ndatabase = "{app.database}"\n'
                      f'[apps.tasks.backup]\ndirectory = "{app.backup.directory}"\nprune = false\n'
                      '[apps.tasks.schedule]\nbackup = "every 1h"\n'
                      f'[daemon]\nlisten = "127.0.0.1:{port}"\nmonitor = false\n')
    env = {**os.environ, "RAILGUARD_WEB_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config), "daemon"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return get(base + "/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(answers, "the daemon's /healthz")
        assert get(base + "/", {})[0] == 401
        status, html, _ = get(base + "/apps/tasks", basic(TOKEN))
        assert status == 200 and "<title>" in html and "restore drills" in html
    finally:
        process.terminate()
        process.communicate(timeout=90)
