"""The gate's automatic rollback after a failed smoke check never touches the data: when the bad
deploy changed the schema since its pre-deploy snapshot, the run's log and one notification say
a data rollback may be needed, with the command for it."""

from __future__ import annotations

import io
import sqlite3
import tarfile
from pathlib import Path

from conftest import create_tasks_database
from gate.conftest import Remote, RunningCapRover


def migrate_when_built(captain: RunningCapRover, database: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A tree holding MIGRATE changes the live database's schema when it starts, as a migration
    does (the example app itself runs on the runtime's own database)."""
    built = captain.built

    def build_and_migrate(deployment) -> None:  # type: ignore[no-untyped-def]
        names: set[str] = set()
        if deployment.ok and deployment.tree:
            with tarfile.open(fileobj=io.BytesIO(deployment.tree)) as archive:
                names = {member.name.removeprefix("./") for member in archive.getmembers()}
        if "MIGRATE" in names:
            with sqlite3.connect(database) as connection:
                connection.execute("ALTER TABLE tasks ADD COLUMN due TEXT")
        built(deployment)

    monkeypatch.setattr(captain, "built", build_and_migrate)


def run_log(tmp_path: Path, run_id: int) -> list[str]:
    [path] = (tmp_path / "state").rglob(f"logs/{run_id}.log")
    return path.read_text().splitlines()


def test_the_automatic_rollback_says_the_data_may_need_rolling_back_and_how(
        start_gate, remote: Remote, captain: RunningCapRover, inbox, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    database = create_tasks_database(tmp_path / "live.db", rows=5)
    migrate_when_built(captain, database, monkeypatch)
    gate = start_gate(smoke=True, smoke_wait="3s", database=database)
    good = remote.commit("good")
    _, _, first = gate.push_and_deliver()
    assert gate.wait_for_run(first["run"])["status"] == "deployed"
    remote.commit("a migration, then a failing start", {"SMOKE_FAIL": "1\n", "MIGRATE": "1\n"})
    _, _, second = gate.push_and_deliver()

    run = gate.wait_for_run(second["run"])

    assert run["status"] == "rolled_back", run
    # The data stays as the bad deploy left it: the rollback is the image's only.
    with sqlite3.connect(database) as connection:
        assert "due" in [row[1] for row in connection.execute("PRAGMA table_info(tasks)")]
    [line] = [line for line in run_log(tmp_path, second["run"]) if "the data was not rolled back" in line]
    snapshot = line.split("pre-deploy snapshot ", 1)[1].split(" ", 1)[0]
    assert line.endswith(f"the data was not rolled back: the deploy changed the schema since the pre-deploy "
                         f"snapshot {snapshot} (column tasks.due TEXT added); a data rollback may be needed: "
                         f"railguard restore {snapshot} --app tasks")
    assert inbox.titles() == [f"tasks deploy OK {good[:12]}", "tasks deploy FAILED",
                              f"tasks rolled back to {good[:12]}", "tasks: data not rolled back"]
    assert f"railguard restore {snapshot} --app tasks" in inbox.messages[-1]["message"]


def test_without_automatic_rollback_the_command_rolls_back_image_and_data(
        start_gate, remote: Remote, captain: RunningCapRover, inbox, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    database = create_tasks_database(tmp_path / "live.db", rows=5)
    migrate_when_built(captain, database, monkeypatch)
    gate = start_gate(smoke=True, smoke_wait="3s", database=database, gate_app={"rollback_on_smoke_failure": False})
    remote.commit("good")
    _, _, first = gate.push_and_deliver()
    assert gate.wait_for_run(first["run"])["status"] == "deployed"
    remote.commit("a migration, then a failing start", {"SMOKE_FAIL": "1\n", "MIGRATE": "1\n"})
    _, _, second = gate.push_and_deliver()

    run = gate.wait_for_run(second["run"])

    assert run["status"] == "smoke_failed", run
    [line] = [line for line in run_log(tmp_path, second["run"]) if "the data was not rolled back" in line]
    assert line.endswith("a data rollback may be needed: railguard rollback --app tasks --with-data")
    assert inbox.titles()[-1] == "tasks: data not rolled back"


def test_a_deploy_that_changed_no_schema_says_nothing_about_data(
        start_gate, remote: Remote, captain: RunningCapRover, inbox, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    database = create_tasks_database(tmp_path / "live.db", rows=5)
    gate = start_gate(smoke=True, smoke_wait="3s", database=database)
    good = remote.commit("good")
    _, _, first = gate.push_and_deliver()
    assert gate.wait_for_run(first["run"])["status"] == "deployed"
    remote.commit("a failing start, no migration", {"SMOKE_FAIL": "1\n"})
    _, _, second = gate.push_and_deliver()

    run = gate.wait_for_run(second["run"])

    assert run["status"] == "rolled_back", run
    assert not [line for line in run_log(tmp_path, second["run"]) if "data" in line and "rolled back" in line
                and "not" in line]
    assert inbox.titles() == [f"tasks deploy OK {good[:12]}", "tasks deploy FAILED", f"tasks rolled back to {good[:12]}"]
