"""Rollback that knows the data: each deploy takes a protected pre-deploy snapshot, `rollback` says
whether the schema changed since, and `rollback --with-data` restores the snapshot (after showing
and confirming what is lost) with the safe restore. Real SQLite, real git, the fake CapRover."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from conftest import create_tasks_database
from railguard.errors import ExitCode


def columns(database: Path, table: str) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def tables(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return sorted(row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


def migrate_and_write(database: Path) -> None:
    """What the second commit's migration and then its users do to the live database."""
    connection = sqlite3.connect(database)
    connection.executescript("""
        ALTER TABLE tasks ADD COLUMN due TEXT;
        CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        INSERT INTO tags (name) VALUES ('home'), ('work');
        INSERT INTO tasks (title, due) VALUES ('written after the deploy', '2026-12-24');
    """)
    connection.commit()
    connection.close()


def fingerprint(database: Path) -> tuple[str, ...]:
    """The database's bytes and its -wal's (an empty -wal, which any reader of a WAL database may
    leave, holds nothing)."""
    return tuple(hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() and path.stat().st_size else "-"
                 for path in (database, Path(f"{database}-wal")))


def safety_copies(database: Path) -> list[Path]:
    return sorted(database.parent.glob(f"{database.name}.before-restore-*"))


def two_deploys(run_cli, write_config, repo, login_env, tmp_path, *app_lines: str):
    database = create_tasks_database(tmp_path / "tasks.db", rows=10)
    config = write_config(mode="login", database=database, app_lines=app_lines)
    assert run_cli("--config", config, "deploy", env=login_env).exit_code == 0
    first = repo.sha()
    second = repo.commit("second", {"index.ts": "console.log('v2')\n"})
    result = run_cli("--config", config, "deploy", "--json", env=login_env)
    assert result.exit_code == 0, result.stderr
    return config, database, first, second, json.loads(result.stdout)


def test_a_deploy_takes_a_protected_snapshot_that_names_both_commits_and_replicates(
        run_cli, write_config, captain, captain_app, repo, login_env, tmp_path):
    nas = tmp_path / "nas"
    nas.mkdir()
    config, database, first, second, document = two_deploys(
        run_cli, write_config, repo, login_env, tmp_path, "", "[apps.tasks.destinations.nas]", f'url = "file://{nas}"')
    [snapshot_step] = [step for step in document["pre_steps"] if step["name"] == "snapshot"]
    assert snapshot_step["status"] == "passed"
    name = snapshot_step["details"]["name"]
    assert snapshot_step["details"]["deploy"] == {"commit": second, "replaces": first, "kind": "deploy",
                                                  "deploy_id": document["deploy"]["id"]}
    assert [run["copied"] for run in snapshot_step["details"]["destinations"]] == [[name]]
    listing = json.loads(run_cli("--config", config, "backups", "list", "--json").stdout)
    [entry] = [backup for backup in listing["backups"] if backup["name"] == name]
    assert entry["good"] and entry["deploy"]["commit"] == second
    assert entry["protection"]["reason"] == f"pre-deploy snapshot for {second[:12]}"
    assert (nas / "tasks" / f"{name}.manifest.json").exists() or any(nas.rglob(f"{name}.manifest.json"))


def test_a_rollback_after_a_deploy_that_changed_no_schema_rolls_back_only_the_image(
        run_cli, write_config, captain, captain_app, repo, login_env, tmp_path):
    config, database, first, second, document = two_deploys(run_cli, write_config, repo, login_env, tmp_path)
    name = document["pre_steps"][0]["details"]["name"]
    with sqlite3.connect(database) as connection:  # rows, not schema
        connection.execute("INSERT INTO tasks (title) VALUES ('a row, not a migration')")
    before = fingerprint(database)

    result = run_cli("--config", config, "rollback", env=login_env)

    assert result.exit_code == 0, result.stderr
    assert (f"schema unchanged since the snapshot {name} (taken before {second[:12]} went live)"
            in result.stdout.splitlines())
    assert "data was not rolled back" not in result.stdout
    assert fingerprint(database) == before and safety_copies(database) == []
    last = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert json.loads(last.fields["captainDefinitionContent"])["dockerfileLines"] == ["FROM img-captain-tasks:0"]


def test_a_rollback_without_with_data_names_the_schema_change_and_the_command_for_the_data(
        run_cli, write_config, captain, captain_app, repo, login_env, tmp_path):
    config, database, first, second, document = two_deploys(run_cli, write_config, repo, login_env, tmp_path)
    name = document["pre_steps"][0]["details"]["name"]
    migrate_and_write(database)
    before = fingerprint(database)

    result = run_cli("--config", config, "rollback", env=login_env)

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"schema changed since the snapshot {name} (taken before {second[:12]} went live):" in lines
    assert "  table tags added" in lines and "  column tasks.due TEXT added" in lines
    assert lines[-1] == ("the data was not rolled back: its schema is still the deploy's. To restore the snapshot "
                         f"too (the rows written since are lost): stop the app, then railguard restore {name} "
                         "--app tasks")
    assert fingerprint(database) == before and safety_copies(database) == []


def test_rollback_with_data_without_a_terminal_or_yes_is_refused_and_changes_nothing(
        run_cli, write_config, captain, captain_app, repo, login_env, tmp_path):
    config, database, first, second, _ = two_deploys(run_cli, write_config, repo, login_env, tmp_path)
    migrate_and_write(database)
    before = fingerprint(database)
    calls = len(captain.calls_to("/api/v2/user/apps/appData/tasks", "POST"))
    deploys = json.loads(run_cli("--config", config, "deploys", "list", "--json").stdout)["deploys"]

    result = run_cli("--config", config, "rollback", "--with-data", env=login_env)

    assert result.exit_code == ExitCode.ERROR
    assert result.stderr.splitlines()[-2].startswith("error: rollback --with-data would restore ")
    assert result.stderr.splitlines()[-2].endswith("no terminal to confirm it, so nothing was changed")
    assert result.stderr.splitlines()[-1] == ("hint: Read what is lost (run it at a terminal), then add --yes "
                                              "to go ahead")
    assert "tasks: 1 row lost" in result.stdout and "tags (created since the snapshot): 2 rows lost" in result.stdout
    assert fingerprint(database) == before and safety_copies(database) == []
    assert len(captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")) == calls
    assert json.loads(run_cli("--config", config, "deploys", "list", "--json").stdout)["deploys"] == deploys


def test_rollback_with_data_restores_the_snapshot_and_reports_the_rows_lost_per_table(
        run_cli, write_config, captain, captain_app, repo, login_env, tmp_path):
    config, database, first, second, document = two_deploys(run_cli, write_config, repo, login_env, tmp_path)
    name = document["pre_steps"][0]["details"]["name"]
    migrate_and_write(database)
    migrated = fingerprint(database)

    result = run_cli("--config", config, "rollback", "--with-data", "--yes", "--json", env=login_env)

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    data = report["data"]
    assert (data["snapshot"], data["live_commit"], data["schema_changed"]) == (name, second, True)
    assert {loss["table"]: (loss["lost"], loss["back"]) for loss in data["rows_lost"]} == {"tasks": (1, 0),
                                                                                            "tags": (2, 0)}
    # The data is the snapshot's again: no tags table, no due column, the ten rows of before.
    assert tables(database) == ["tasks"] and columns(database, "tasks") == ["id", "title", "done"]
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM tasks").fetchone() == (10,)
    # The database it replaced is kept, whole, as the safety copy.
    [safety] = safety_copies(database)
    assert data["restored"]["safety_copy"] == str(safety)
    assert "tags" in tables(safety) and "due" in columns(safety, "tasks")
    assert migrated != fingerprint(database)
    # The rollback itself went out after the restore, and took its own snapshot of the migrated data first.
    assert [step["name"] for step in report["pre_steps"]][0] == "snapshot"
    assert [step["name"] for step in report["pre_steps"]][-1] == "restore-data"
    own = report["pre_steps"][0]["details"]
    assert (own["deploy"]["kind"], own["deploy"]["commit"], own["deploy"]["replaces"]) == ("rollback", first, second)
    last = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert json.loads(last.fields["captainDefinitionContent"])["dockerfileLines"] == ["FROM img-captain-tasks:0"]


def test_rollback_with_data_without_a_snapshot_is_not_found_and_changes_nothing(
        run_cli, write_config, captain, captain_app, repo, login_env, tmp_path):
    config, database, first, second, _ = two_deploys(
        run_cli, write_config, repo, login_env, tmp_path, "", "[apps.tasks.snapshot]", "enabled = false")
    calls = len(captain.calls_to("/api/v2/user/apps/appData/tasks", "POST"))

    result = run_cli("--config", config, "rollback", "--with-data", "--yes", env=login_env)

    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr.splitlines()[0] == (f"error: cannot roll back the data: no pre-deploy snapshot of "
                                             f"{second[:12]} is kept in {tmp_path / 'backups'}: the data cannot be "
                                             "rolled back with the image")
    assert len(captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")) == calls


def test_yes_and_force_only_apply_with_data(run_cli, write_config, captain, captain_app, repo, login_env):
    result = run_cli("--config", write_config(mode="login"), "rollback", "--yes", env=login_env)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == "error: --yes and --force only apply with --with-data\nhint: Try: railguard rollback --help\n"


def test_at_a_terminal_rollback_with_data_asks_and_a_no_changes_nothing(
        run_cli, write_config, captain, captain_app, repo, login_env, tmp_path, monkeypatch):
    from railguard.cli import deploy_cmd

    monkeypatch.setattr(deploy_cmd, "_at_a_terminal", lambda: True)
    config, database, first, second, document = two_deploys(run_cli, write_config, repo, login_env, tmp_path)
    name = document["pre_steps"][0]["details"]["name"]
    migrate_and_write(database)
    before = fingerprint(database)
    calls = len(captain.calls_to("/api/v2/user/apps/appData/tasks", "POST"))

    result = run_cli("--config", config, "rollback", "--with-data", env=login_env, input="n\n")

    assert result.exit_code == ExitCode.ERROR
    assert f"Roll back the image and restore {name} over {database}, losing the rows above? [y/N]" in result.stderr
    assert result.stderr.splitlines()[-2:] == ["error: not confirmed: nothing was changed",
                                               "hint: Roll back without --with-data to keep the data as it is"]
    assert fingerprint(database) == before and safety_copies(database) == []
    assert len(captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")) == calls

    result = run_cli("--config", config, "rollback", "--with-data", env=login_env, input="y\n")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    [safety] = safety_copies(database)
    assert lines[-1] == f"the data is back as it was in {name}; the database it replaced is kept as {safety}"
    assert "  tasks: 1 row lost" in lines and "  tags (created since the snapshot): 2 rows lost" in lines
    assert "ok     restore-data: restored the snapshot " + name in "\n".join(lines)
    assert tables(database) == ["tasks"]


def test_a_snapshot_that_fails_blocks_the_deploy_and_capRover_is_never_asked(
        run_cli, write_config, captain, captain_app, repo, login_env, tmp_path):
    database = tmp_path / "tasks.db"
    database.write_bytes(b"this is not a SQLite database, whatever its name says" * 100)
    config = write_config(mode="login", database=database)

    result = run_cli("--config", config, "deploy", env=login_env)

    assert result.exit_code == ExitCode.CHECK_FAILED
    assert result.stdout.startswith("FAILED snapshot: ")
    assert result.stderr.startswith(f"error: deploy of {repo.sha()[:12]} blocked by the snapshot step: ")
    assert captain.calls_to("/api/v2/user/apps/appData/tasks", "POST") == []
    [row] = json.loads(run_cli("--config", config, "deploys", "list", "--json").stdout)["deploys"]
    assert row["result"] == "blocked"
    assert not (tmp_path / "backups").exists() or not list((tmp_path / "backups").glob("tasks-*"))
