"""``railguard deploy`` with the rehearsal (issue 17): a commit whose migration fails on the
production rows is blocked (exit 7) with what the rehearsal found printed, CapRover never asked,
production untouched; a good migration is rehearsed, its schema change shown, and deployed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from deploy.gitrepos import Repo
from drill.sites import files_of, toml_value
from fakes.caprover import FakeApp, FakeCapRover
from rehearsal.candidates import (
    END_OF_MIGRATIONS,
    EXAMPLE,
    FAILS_ON_EXISTING_ROWS,
    GOOD_MIGRATION,
    make_production_database,
    take_verified_backup,
)

UPLOAD = "/api/v2/user/apps/appData/tasks"


def with_migration(migration: tuple[int, str, str]) -> str:
    version, name, sql = migration
    entry = f"    ({version}, {name!r}, \"\"\"\n        {sql}\n    \"\"\"),\n"
    return (EXAMPLE / "app.py").read_text().replace(END_OF_MIGRATIONS, entry + END_OF_MIGRATIONS, 1)


def rehearsed_config(tmp_path: Path, write_config: Callable[..., Path], production: Path) -> Path:
    # The app's live database, with its backups (the pre-deploy snapshots) in tmp_path/backups.
    config = write_config(database=production, app_lines=("prune = false",))
    text = config.read_text()
    (tmp_path / "scratch").mkdir()
    text += "\n".join([
        "", "[apps.tasks.drill]", f"command = {toml_value([sys.executable, 'app.py'])}",
        'env = { DB_PATH = "{db}" }', 'start_timeout = "30s"', 'stop_grace = "5s"',
        f"scratch_dir = {toml_value(str(tmp_path / 'scratch'))}",
        "", "[apps.tasks.rehearsal]", 'timeout = "5s"', ""])
    config.write_text(text)
    return config


def test_deploy_of_a_migration_that_fails_on_production_rows_is_blocked_with_the_rehearsal_shown(
        run_cli, tmp_path, write_config, repo: Repo, captain: FakeCapRover, captain_app: FakeApp, token_env):
    production = make_production_database(tmp_path / "prod" / "data" / "tasks.db", rows=12)
    config = rehearsed_config(tmp_path, write_config, production)
    take_verified_backup(production, tmp_path / "backups")
    sha = repo.commit("priority", {"app.py": with_migration(FAILS_ON_EXISTING_ROWS)})
    before = files_of(production.parent)  # the snapshot step reads it (files_of)

    result = run_cli("--config", config, "deploy", env=token_env)

    assert result.exit_code == 7, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # The pre-deploy snapshot first, then the rehearsal on a copy of it (deploy_steps).
    assert lines[0].startswith("ok     snapshot: ")
    failed = next(line for line in lines if line.startswith("FAILED "))
    assert failed == (f"FAILED rehearsal: rehearsal of {sha[:12]} on {failed.split(' on ')[1].split()[0]} "
                        "failed at health: migration 3 (add task priority) failed: Cannot add a NOT NULL column "
                        "with default value NULL")
    assert "    rows tasks: 12 -> 12" in lines
    assert any(line.startswith("    FAILED health ") for line in lines)
    assert "      | tasks-app: migrations failed: migration 3 (add task priority) failed: Cannot add a NOT NULL " \
           "column with default value NULL" in lines
    assert result.stderr.startswith(f"error: deploy of {sha[:12]} blocked by the rehearsal step: ")
    assert captain.calls_to(UPLOAD, "POST") == []
    assert files_of(production.parent) == before
    listed = run_cli("--config", config, "deploys", "list", env=token_env)
    assert "blocked" in listed.stdout

    as_json = run_cli("--config", config, "deploy", "--json", env=token_env)
    assert as_json.exit_code == 7
    document = json.loads(as_json.stdout)
    assert document["ok"] is False and document["exit_code"] == 7
    assert document["error"].startswith(f"deploy of {sha[:12]} blocked by the rehearsal step: ")
    snapshot_step, step = document["pre_steps"]
    assert (snapshot_step["name"], snapshot_step["status"]) == ("snapshot", "passed")
    assert step["name"] == "rehearsal" and step["status"] == "failed"
    assert step["details"]["failed_migration"] == {"id": "3", "name": "add task priority",
                                                   "error": "Cannot add a NOT NULL column with default value NULL"}
    assert step["details"]["shape"]["rows"]["tasks"] == {"before": 12, "after": 12}
    assert as_json.stderr.startswith("error: deploy of ")


def test_deploy_of_a_good_migration_is_rehearsed_then_deployed(
        run_cli, tmp_path, write_config, repo: Repo, captain: FakeCapRover, captain_app: FakeApp, token_env):
    production = make_production_database(tmp_path / "prod" / "data" / "tasks.db", rows=12)
    config = rehearsed_config(tmp_path, write_config, production)
    take_verified_backup(production, tmp_path / "backups")
    sha = repo.commit("priority, with a default", {"app.py": with_migration(GOOD_MIGRATION)})

    result = run_cli("--config", config, "deploy", env=token_env)

    assert result.exit_code == 0, result.stdout + result.stderr
    assert any(line.startswith(f"ok     rehearsal: rehearsal of {sha[:12]} on ")
               for line in result.stdout.splitlines())
    assert "    column tasks.priority INTEGER NOT NULL DEFAULT 0 added" in result.stdout.splitlines()
    assert f"deployed {sha[:12]} to tasks" in result.stdout
    [upload] = captain.calls_to(UPLOAD, "POST")
    assert upload.fields["gitHash"] == sha
