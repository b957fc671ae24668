"""``railguard drill`` with the example app as a real process on 127.0.0.1."""

from __future__ import annotations

import json
import sys

import pytest
from drill.sites import hanging_command, make_database_the_app_cannot_migrate, process_gone, snapshot


def drill(run_cli, site, *args: str):  # type: ignore[no-untyped-def]
    return run_cli("--config", site.config, "drill", *args)


def drill_json(run_cli, site, *args: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    result = drill(run_cli, site, *args, "--json")
    return result.exit_code, json.loads(result.stdout)


def test_a_good_backup_boots_the_app_and_the_drill_passes(run_cli, site, clean_env):
    site.backup()
    site.configure(assertions=[{"sql": "SELECT count(*) FROM tasks", "expect": "> 0"}])
    code, report = drill_json(run_cli, site)
    assert code == 0, report
    assert report["ok"] is True and report["result"] == "passed"
    assert [step["name"] for step in report["steps"]] == ["verify", "start", "health", "metrics", "assertions", "stop"]
    assert all(step["ok"] for step in report["steps"])
    metrics = next(step for step in report["steps"] if step["name"] == "metrics")
    assert "migrations_ok 1" in metrics["detail"]
    assertions = next(step for step in report["steps"] if step["name"] == "assertions")
    assert "25 is > 0" in assertions["detail"]
    assert process_gone(report["app_pid"])
    assert site.scratch_entries() == [], "the temporary copy was not removed"
    [line] = site.drill_log()
    assert line["result"] == "ok" and line["backup"] == report["backup"] and line["source"] == "local"
    assert {"verify_s", "start_s", "health_s", "metrics_s", "assertions_s", "stop_s", "total_s"} <= line.keys()
    assert "output" not in line


def test_the_human_report_names_each_step_and_the_result(run_cli, site, clean_env):
    site.backup()
    site.configure()
    result = drill(run_cli, site)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == ["verify", "start", "health", "metrics", "stop"]
    assert lines[-1].startswith("drill PASSED: backup tasks-")


def test_the_drill_never_touches_the_production_database_or_its_directory(run_cli, site, clean_env):
    site.backup()
    site.configure()
    before = snapshot(site.database.parent)
    assert drill(run_cli, site).exit_code == 0
    assert snapshot(site.database.parent) == before


def test_a_backup_with_a_flipped_byte_fails_verification_before_the_app_starts(run_cli, site, clean_env):
    stored = site.backup()
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    site.configure()
    code, report = drill_json(run_cli, site)
    assert code == 4
    assert report["failed_step"] == "verify"
    assert "sha256 mismatch" in report["reason"]
    assert [step["name"] for step in report["steps"]] == ["verify"], "the app must not start on a damaged backup"
    assert report["app_pid"] is None
    [line] = site.drill_log()
    assert line["result"] == "failed" and line["step"] == "verify" and "sha256 mismatch" in line["error"]
    assert site.scratch_entries() == []


def test_a_database_the_app_cannot_migrate_fails_at_health_with_the_app_log_tail(run_cli, site, clean_env):
    site.database.unlink()
    make_database_the_app_cannot_migrate(site.database)
    site.backup()
    # Long enough for the app to start and answer 503 on a loaded machine: the reason must hold
    # its last answer, which a 3 s timeout sometimes cut before the app's first one.
    site.configure(start_timeout="10s")
    code, report = drill_json(run_cli, site)
    assert code == 7
    assert report["failed_step"] == "health"
    assert "did not answer 200 within 10s" in report["reason"]
    assert "HTTP 503" in report["reason"] and "migrations failed" in report["reason"]
    assert any(line.startswith("tasks-app: migrations failed: ") for line in report["output_tail"])
    assert process_gone(report["app_pid"])
    [line] = site.drill_log()
    assert line["result"] == "failed" and line["step"] == "health"
    assert "tasks-app: migrations failed" in line["output"]


def test_the_human_report_of_a_failed_drill_shows_the_app_output(run_cli, site, clean_env):
    site.database.unlink()
    make_database_the_app_cannot_migrate(site.database)
    site.backup()
    site.configure(start_timeout="10s")  # the app's output must be there: it has to have started
    result = drill(run_cli, site)
    assert result.exit_code == 7
    assert "drill FAILED at health: /health did not answer 200 within 10s" in result.stdout
    assert "app output (last lines):" in result.stdout
    assert "  | tasks-app: migrations failed" in result.stdout


def test_an_app_that_exits_at_once_fails_with_its_exit_code_and_output(run_cli, site, clean_env):
    site.backup()
    site.configure(command=[sys.executable, "-c", "import sys; print('cannot open the bot token'); sys.exit(3)"])
    code, report = drill_json(run_cli, site)
    assert code == 7
    assert report["failed_step"] == "health"
    assert "exited with code 3 before /health answered 200" in report["reason"]
    assert report["output_tail"] == ["cannot open the bot token"]


def test_an_app_that_hangs_at_start_times_out_and_its_whole_process_group_is_killed(run_cli, site, clean_env,
                                                                                    tmp_path):
    site.backup()
    pids = tmp_path / "pids"
    site.configure(command=hanging_command(pids), start_timeout="2s", stop_grace="1s")
    code, report = drill_json(run_cli, site)
    assert code == 7
    assert report["failed_step"] == "health"
    assert "did not answer 200 within 2s" in report["reason"]
    stop = next(step for step in report["steps"] if step["name"] == "stop")
    assert stop["ok"] and "SIGKILL after the grace period" in stop["detail"]
    app_pids = [int(pid) for pid in pids.read_text().split()]
    assert len(app_pids) == 2 and report["app_pid"] in app_pids
    assert all(process_gone(pid) for pid in app_pids), "a process of the app's group survived the drill"
    assert report["output_tail"] == ["hanging at start"]
    assert site.scratch_entries() == []


def test_an_assertion_failing_on_an_empty_database_fails_the_drill(run_cli, site, clean_env):
    site.database.unlink()
    from conftest import create_tasks_database

    create_tasks_database(site.database, rows=0)
    site.backup()
    site.configure(assertions=[{"sql": "SELECT count(*) FROM tasks", "expect": "> 0"}])
    code, report = drill_json(run_cli, site)
    assert code == 7
    assert report["failed_step"] == "assertions"
    assert report["reason"] == "assertion failed: SELECT count(*) FROM tasks: 0 is not > 0"
    assert [s["name"] for s in report["steps"] if s["ok"]] == ["verify", "start", "health", "metrics", "stop"]


@pytest.mark.parametrize(("newest", "passes"), [("-2 hours", True), ("-3 days", False)])
def test_the_newest_row_must_be_younger_than_max_age(run_cli, site, clean_env, newest, passes):
    import sqlite3

    with sqlite3.connect(site.database) as connection:
        connection.execute("CREATE TABLE events (at TEXT NOT NULL)")
        connection.execute("INSERT INTO events VALUES (strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-30 days'))")
        connection.execute("INSERT INTO events VALUES (strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ?))", (newest,))
    connection.close()
    site.backup()
    site.configure(assertions=[{"sql": "SELECT max(at) FROM events", "max_age": "36h"}])
    code, report = drill_json(run_cli, site)
    if passes:
        assert code == 0, report
    else:
        assert code == 7
        assert report["failed_step"] == "assertions"
        assert "SELECT max(at) FROM events: newest is 72.0h old (older than 36.0h)" in report["reason"]


def test_status_reads_the_drill_log_a_drill_writes(run_cli, site, clean_env):
    site.backup()
    site.configure()
    assert drill(run_cli, site).exit_code == 0
    status = json.loads(run_cli("--config", site.config, "status", "--json").stdout)
    rows = [row for row in _rows(status) if row.get("name") == "drill"]
    assert rows and rows[0]["state"] == "ok", status
    site.configure(command=[sys.executable, "-c", "raise SystemExit(1)"])
    assert drill(run_cli, site).exit_code == 7
    status = json.loads(run_cli("--config", site.config, "status", "--json").stdout)
    [row] = [row for row in _rows(status) if row.get("name") == "drill"]
    assert row["state"] == "flagged" and "exited with code 1" in row["detail"]


def _rows(document):  # type: ignore[no-untyped-def]
    """Every dict with a "name" and a "state" anywhere in status's JSON."""
    if isinstance(document, dict):
        if "name" in document and "state" in document:
            yield document
        for value in document.values():
            yield from _rows(value)
    elif isinstance(document, list):
        for value in document:
            yield from _rows(value)


def test_a_command_that_cannot_be_started_fails_at_start(run_cli, site, clean_env):
    site.backup()
    site.configure(command=["railguard-no-such-program", "--db", "{db}"])
    code, report = drill_json(run_cli, site)
    assert code == 7
    assert report["failed_step"] == "start"
    assert report["reason"] == "cannot start the app: railguard-no-such-program: No such file or directory"
    assert [step["name"] for step in report["steps"]] == ["verify", "start"]
    assert site.scratch_entries() == []
