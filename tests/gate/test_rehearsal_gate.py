"""The gate with the pre-deploy rehearsal (issue 17): a pushed commit whose migration fails on the
production rows passes its tests, is rehearsed on a copy of the real data, and is never deployed;
the gate follows the tests' ``success`` with a ``failure`` and keeps the app's output in the run
log. A good migration is rehearsed and deployed."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from drill.sites import snapshot, toml_value
from gate.conftest import Gate, GateConfig, Remote, RunningCapRover, serve_gate
from rehearsal.candidates import (
    END_OF_MIGRATIONS,
    EXAMPLE,
    FAILS_ON_EXISTING_ROWS,
    GOOD_MIGRATION,
    make_production_database,
    take_verified_backup,
)

from railguard.rehearsal.step import UNSANDBOXED
from railguard.rehearsal.steps import deploy_steps


def with_migration(source: str, migration: tuple[int, str, str]) -> str:
    version, name, sql = migration
    entry = f"    ({version}, {name!r}, \"\"\"\n        {sql}\n    \"\"\"),\n"
    return source.replace(END_OF_MIGRATIONS, entry + END_OF_MIGRATIONS, 1)


@pytest.fixture
def production(tmp_path: Path) -> Path:
    return make_production_database(tmp_path / "prod" / "data" / "tasks.db", rows=25)


@pytest.fixture
def rehearsed_gate(tmp_path: Path, write_config: Callable[..., GateConfig], gate_env: dict[str, str],
                   remote: Remote, production: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """The gate as ``railguard gate serve`` starts it (steps_for=deploy_steps), for an app whose
    drill starts the example app from the pushed tree, with a verified backup of production."""
    for name, value in gate_env.items():
        monkeypatch.setenv(name, value)
    config = write_config(smoke=True)
    text = config.path.read_text().replace('database = "/dev/null"', f"database = {toml_value(str(production))}")
    (tmp_path / "scratch").mkdir()
    text += "\n".join([
        "", "[apps.tasks.backup]", f"directory = {toml_value(str(tmp_path / 'backups'))}", "prune = false",
        "", "[apps.tasks.drill]", f"command = {toml_value([sys.executable, 'app.py'])}",
        'env = { DB_PATH = "{db}" }', 'start_timeout = "30s"', 'stop_grace = "5s"',
        f"scratch_dir = {toml_value(str(tmp_path / 'scratch'))}",
        "", "[[apps.tasks.drill.assertions]]", 'sql = "SELECT count(*) FROM tasks"', 'expect = "> 0"',
        "", "[apps.tasks.rehearsal]", 'timeout = "6s"', ""])
    config.path.write_text(text)
    take_verified_backup(production, tmp_path / "backups")
    remote.commit("the example app", {"app.py": (EXAMPLE / "app.py").read_text()})
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(serve_gate(config, gate_env, remote, steps_for=deploy_steps))


def test_a_migration_that_fails_on_production_rows_is_blocked_and_the_gate_posts_failure(
        rehearsed_gate: Gate, remote: Remote, captain: RunningCapRover, forgejo, inbox, production: Path) -> None:
    gate = rehearsed_gate
    before = snapshot(production.parent)
    sha = remote.commit("priority", {"app.py": with_migration((EXAMPLE / "app.py").read_text(),
                                                              FAILS_ON_EXISTING_ROWS)})
    _, _, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"], timeout=120)

    assert run["status"] == "blocked", run
    assert forgejo.states_for(sha) == ["pending", "success", "failure"]
    failure = forgejo.statuses_for(sha)[-1]
    assert failure.context == "railguard/tests"
    assert failure.description.startswith("tests passed, not deployed: rehearsal failed")
    assert "migration 3 (add task priority) failed" in failure.description
    assert "migration 3 (add task priority) failed" in run["summary"]
    assert "pre-deploy rehearsal: FAILED: " in run["log"]
    assert "  FAILED health " in run["log"]
    assert "  | tasks-app: migrations failed: migration 3 (add task priority) failed" in run["log"]
    assert "rows tasks: 25 -> 25" in run["log"]
    assert f"warning: {UNSANDBOXED}" in run["log"]
    assert [d for d in captain.deployments if d.app == "tasks"] == [], "a blocked deploy reached CapRover"
    assert snapshot(production.parent) == before, "production changed"
    assert any("migration 3 (add task priority) failed" in m["title"] + m["message"] for m in inbox.messages), \
        inbox.messages


def test_a_good_migration_is_rehearsed_then_deployed(rehearsed_gate: Gate, remote: Remote,
                                                      captain: RunningCapRover, forgejo) -> None:
    gate = rehearsed_gate
    sha = remote.commit("priority, with a default", {"app.py": with_migration((EXAMPLE / "app.py").read_text(),
                                                                              GOOD_MIGRATION)})
    _, _, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"], timeout=120)

    assert run["status"] == "deployed", run
    assert forgejo.states_for(sha) == ["pending", "success"]
    assert "column tasks.priority INTEGER NOT NULL DEFAULT 0 added" in run["log"]
    assert [d.git_hash for d in captain.deployments if d.app == "tasks"] == [sha]
