"""``railguard smoke`` against the example app running as a real process on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from local_http import JsonReceiver, free_port

from railguard.config import SmokeSettings
from railguard.smoke import Observation, evaluate, run_smoke
from railguard.smoke.checks import same_commit

COMMIT = "abc123def4567890"


def iso(moment: datetime) -> str:
    return moment.isoformat()


def before_start() -> str:
    return iso(datetime.now(timezone.utc) - timedelta(seconds=5))


def config(tmp_path: Path, url: str, extra: str = "", wait: str = "1s") -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\nurl = "{url}"\n'
                    f'[apps.tasks.smoke]\nwait = "{wait}"\npoll_interval = "0.2s"\n{extra}')
    return path


def test_a_healthy_new_process_passes_and_deploy_ok_is_sent_once_when_run_twice(
        run_cli, tmp_path: Path, start_app, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    since = before_start()
    app = start_app(commit=COMMIT)
    cfg = config(tmp_path, app.url)
    env = {"RAILGUARD_NOTIFY_URLS": receiver.url}
    first = run_cli("--config", cfg, "smoke", "--since", since, "--commit", COMMIT[:9], env=env)
    second = run_cli("--config", cfg, "smoke", "--since", since, "--commit", COMMIT[:9], env=env)
    assert first.exit_code == 0, first.stdout + first.stderr
    assert second.exit_code == 0
    assert f"smoke OK: tasks serves {COMMIT}, new process, migrations ok" in first.stdout
    assert "notification deploy_ok: sent" in first.stdout
    assert "notification deploy_ok: duplicate" in second.stdout
    assert receiver.titles() == [f"tasks deploy OK {COMMIT[:12]}"]


def test_the_old_process_still_serving_fails(run_cli, tmp_path: Path, start_app, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    app = start_app(commit=COMMIT)
    time.sleep(0.01)
    deploy_started = iso(datetime.now(timezone.utc))
    # A wait of several polls even if one observation is slow (a loaded machine): 1 s allowed one.
    result = run_cli("--config", config(tmp_path, app.url, wait="3s"), "smoke", "--since", deploy_started,
                     "--json", env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    assert result.exit_code == 7
    report = json.loads(result.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["health"]["ok"] and checks["migrations"]["ok"]
    assert not checks["new_process"]["ok"]
    assert "the old process is still serving" in checks["new_process"]["detail"]
    assert report["attempts"] >= 2  # it kept trying for the whole (short) wait
    assert [m["title"] for m in receiver.messages] == ["tasks deploy FAILED"]


def test_a_new_process_whose_migrations_failed_fails(run_cli, tmp_path: Path, start_app) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data").mkdir()
    database = tmp_path / "data" / "tasks.db"
    with sqlite3.connect(database) as db:  # a database from a newer build (examples/tasks-app/README.md)
        db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
        db.execute("INSERT INTO schema_migrations VALUES (3, 'future', '2026-01-01')")
    since = before_start()
    app = start_app(db_path=database, commit=COMMIT)
    result = run_cli("--config", config(tmp_path, app.url), "smoke", "--since", since, "--no-notify")
    assert result.exit_code == 7
    assert "FAILED health: HTTP 503: migrations failed" in result.stdout
    assert "FAILED migrations: migrations_ok is 0, expected 1" in result.stdout
    assert "ok     new_process: started" in result.stdout


def test_the_wrong_commit_fails(run_cli, tmp_path: Path, start_app) -> None:  # type: ignore[no-untyped-def]
    since = before_start()
    app = start_app(commit=COMMIT)
    result = run_cli("--config", config(tmp_path, app.url), "smoke", "--since", since, "--commit", "fedcba9876",
                     "--no-notify")
    assert result.exit_code == 7
    assert f"FAILED commit: serving {COMMIT}, expected fedcba9876" in result.stdout


def test_the_result_is_recorded_for_status(run_cli, tmp_path: Path, start_app) -> None:  # type: ignore[no-untyped-def]
    since = before_start()
    app = start_app(commit=COMMIT)
    cfg = config(tmp_path, app.url)
    assert run_cli("--config", cfg, "smoke", "--since", since, "--no-notify").exit_code == 0
    recorded = json.loads((tmp_path / "state" / "smoke.json").read_text())["tasks"]
    assert recorded["ok"] is True and recorded["commit"] == COMMIT


def test_a_passing_smoke_stands_when_its_result_cannot_be_recorded(run_cli, tmp_path: Path, start_app,  # type: ignore[no-untyped-def]
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    since = before_start()
    app = start_app(commit=COMMIT)
    cfg = config(tmp_path, app.url)
    (tmp_path / "state").write_text("a file where the state directory belongs\n")
    result = run_cli("--config", cfg, "smoke", "--since", since, "--no-notify")
    assert result.exit_code == 0, result.stderr
    assert [r.getMessage() for r in caplog.records if r.name == "railguard.smoke"] == [
        f"cannot record the smoke result in {tmp_path / 'state'}: File exists"]
    assert (tmp_path / "state").read_text() == "a file where the state directory belongs\n"


def test_keeping_a_smoke_result_says_whether_it_was_recorded(tmp_path: Path) -> None:
    from railguard.smoke.record import keep_smoke_result, read_smoke_results

    now = datetime(2026, 3, 1, 4, 0, tzinfo=timezone.utc)
    assert keep_smoke_result(tmp_path / "state", "tasks", ok=True, summary="smoke OK", commit=COMMIT, now=now)
    assert read_smoke_results(tmp_path / "state")["tasks"]["commit"] == COMMIT
    (tmp_path / "blocked").write_text("")
    assert not keep_smoke_result(tmp_path / "blocked", "tasks", ok=False, summary="x", commit=None, now=now)


def test_an_app_that_never_answers_fails_after_the_bounded_wait(tmp_path: Path) -> None:
    settings = SmokeSettings(wait="2s", poll_interval="0.1s", timeout="0.5s")  # room for 2 attempts under load
    report = run_smoke("tasks", f"http://127.0.0.1:{free_port()}", settings,
                       deploy_started_at=datetime.now(timezone.utc))
    assert not report.ok and report.attempts >= 2
    assert report.checks[0].detail == "connection refused"


def test_without_a_deploy_start_smoke_asks_for_since(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--config", config(tmp_path, "http://127.0.0.1:1"), "smoke")
    assert result.exit_code == 3
    assert "error: no deploy start time to compare the app's start with" in result.stderr
    assert "hint: Give --since TIME" in result.stderr


def test_without_a_url_smoke_is_a_config_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("smoke", "--since", "2026-11-27T04:00:00Z")
    assert result.exit_code == 3
    assert "error: no URL for the app tasks" in result.stderr


def test_a_bad_since_is_a_usage_error(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--config", config(tmp_path, "http://127.0.0.1:1"), "smoke", "--since", "yesterday")
    assert result.exit_code == 3
    assert "--since: expected an ISO 8601 time or epoch seconds, got 'yesterday'" in result.stderr


DEPLOY = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc)
NEW_MS = int((DEPLOY + timedelta(seconds=30)).timestamp() * 1000)
GOOD_METRICS = f'app_started_at {NEW_MS}\nmigrations_ok 1\napp_build_info{{commit="{COMMIT}"}} 1\n'


@pytest.mark.parametrize("metrics, version, expected, failed", [
    (GOOD_METRICS, '{"commit": "%s"}' % COMMIT, COMMIT, None),
    (GOOD_METRICS, None, COMMIT[:7], None),  # no /version: the *_build_info metric names the commit
    (GOOD_METRICS.replace("migrations_ok 1", "migrations_ok 0"), None, None, "migrations"),
    (GOOD_METRICS.replace("migrations_ok 1\n", ""), None, None, "migrations"),
    (GOOD_METRICS.replace(str(NEW_MS), str(NEW_MS - 60_000)), None, None, "new_process"),
    (GOOD_METRICS.replace(f"app_started_at {NEW_MS}\n", ""), None, None, "new_process"),
    ("this is { not prometheus", None, None, "metrics"),
    (GOOD_METRICS, '{"commit": "0000000"}', COMMIT, "commit"),
    ("app_started_at %d\nmigrations_ok 1\n" % NEW_MS, None, COMMIT, "commit"),
])
def test_evaluate_names_the_first_failing_check(metrics: str, version: str | None, expected: str | None,
                                                 failed: str | None) -> None:
    seen = Observation(200, "ok", metrics_text=metrics, version_text=version)
    evaluation = evaluate(seen, deploy_started_at=DEPLOY, expected_commit=expected, settings=SmokeSettings())
    assert evaluation.ok is (failed is None)
    if failed:
        assert evaluation.first_failure is not None and evaluation.first_failure.name == failed
    else:
        assert evaluation.started_at == DEPLOY + timedelta(seconds=30)


@pytest.mark.parametrize("seen, expected, same", [
    ("abc123def4567890", "abc123d", True), ("abc123d", "ABC123DEF4567890", True), ("abc123", "abc1234", False),
    ("abc123def", "abc124def", False),
])
def test_commits_match_when_one_abbreviates_the_other(seen: str, expected: str, same: bool) -> None:
    assert same_commit(seen, expected) is same
