"""The rehearsal as a pre-deploy step (railguard.rehearsal.step): when it rehearses, when it skips
and why, and what a failed rehearsal hands to the blocked deploy."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rehearsal.candidates import (
    FAILS_ON_EXISTING_ROWS,
    GOOD_MIGRATION,
    AppRepository,
    app_settings,
    make_production_database,
    settings_for,
    take_verified_backup,
)

from railguard.backup.catalog import BackupRecord
from railguard.config import AppSettings, DrillSettings
from railguard.deploy.steps import PreDeployContext, StepStatus, run_pre_deploy
from railguard.notify.notifier import Notifier
from railguard.pages.writer import take_generation
from railguard.rehearsal.step import rehearsal_step


@pytest.fixture
def repository(tmp_path: Path) -> AppRepository:
    return AppRepository.create(tmp_path / "repo")


@pytest.fixture
def production(tmp_path: Path) -> Path:
    return make_production_database(tmp_path / "prod" / "data" / "tasks.db", rows=30)


def context(app: AppSettings, *, commit: str | None, tar: bytes | None, kind: str = "deploy",
            replaces: str | None = None, facts: dict | None = None,  # type: ignore[type-arg]
            repository: Path | None = None) -> PreDeployContext:
    settings = settings_for(app)
    return PreDeployContext(settings=settings, app_name="tasks", app=app, kind=kind, deploy_id=1,  # type: ignore[arg-type]
                            commit=commit, replaces=replaces, tar=tar,
                            clock=lambda: datetime.now(timezone.utc),
                            notifier=Notifier(settings.notifications, None, env={}), facts=facts or {},
                            repository=repository)


def test_without_a_drill_the_rehearsal_is_off_and_says_why(tmp_path):
    app = AppSettings(database=tmp_path / "tasks.db")
    result = rehearsal_step(context(app, commit="a" * 40, tar=b""))
    assert result.status is StepStatus.SKIPPED
    assert result.skipped == "off (no [apps.tasks.drill] command or image)"


def test_enabled_false_turns_it_off(tmp_path, production):
    app = app_settings(tmp_path, production, enabled=False)
    result = rehearsal_step(context(app, commit="a" * 40, tar=b""))
    assert result.skipped == "off ([apps.tasks.rehearsal] enabled = false)"


def test_a_rollback_is_never_rehearsed(tmp_path, production, repository):
    app = app_settings(tmp_path, production)
    commit = repository.sha()
    result = rehearsal_step(context(app, commit=commit, tar=repository.archive(commit), kind="rollback"))
    assert result.skipped == "a rollback is not rehearsed (it must not be blocked)"


def test_no_tree_means_nothing_to_rehearse(tmp_path, production):
    app = app_settings(tmp_path, production)
    result = rehearsal_step(context(app, commit="a" * 40, tar=None))
    assert result.skipped == "no tree to rehearse (an image rollback or the legacy branch build)"


def test_a_failed_rehearsal_is_a_failed_step_naming_the_migration(tmp_path, production, repository):
    app = app_settings(tmp_path, production, timeout="5s")
    snapshot = take_verified_backup(production, app.backup.directory)
    commit = repository.add_migration(FAILS_ON_EXISTING_ROWS)
    result = rehearsal_step(context(app, commit=commit, tar=repository.archive(commit),
                                    facts={"snapshot": snapshot}))
    assert result.status is StepStatus.FAILED
    assert result.name == "rehearsal"
    assert result.summary.endswith("failed at health: migration 3 (add task priority) failed: "
                                   "Cannot add a NOT NULL column with default value NULL")
    assert result.details["source"] == "pre-deploy snapshot"
    assert result.details["backup"] == snapshot.name
    assert result.details["failed_migration"]["id"] == "3"
    assert result.details["shape"]["schema_changed"] is False
    assert any("migration 3 (add task priority) failed" in line for line in result.details["output_tail"])
    assert "app output (last lines):" in result.details["lines"]


class TakenSnapshot:
    """What the snapshot step leaves in facts["snapshot"]: an object whose record() is the backup."""

    def __init__(self, record: BackupRecord) -> None:
        self._record = record

    def record(self) -> BackupRecord:
        return self._record


def test_the_snapshot_steps_snapshot_is_the_copy_even_when_a_newer_backup_exists(tmp_path, production,
                                                                                  repository):
    app = app_settings(tmp_path, production)
    snapshot = take_verified_backup(production, app.backup.directory, minutes_ago=5)
    newer = take_verified_backup(production, app.backup.directory)
    assert newer.name != snapshot.name
    commit = repository.add_migration(GOOD_MIGRATION)
    result = rehearsal_step(context(app, commit=commit, tar=repository.archive(commit),
                                    facts={"snapshot": TakenSnapshot(snapshot)}))
    assert result.status is StepStatus.PASSED, result.details["lines"]
    assert (result.details["source"], result.details["backup"]) == ("pre-deploy snapshot", snapshot.name)


def test_a_good_migration_passes_with_the_schema_change_in_its_details(tmp_path, production, repository):
    app = app_settings(tmp_path, production)
    older = take_verified_backup(production, app.backup.directory, minutes_ago=60)
    newest = take_verified_backup(production, app.backup.directory)
    assert older.name != newest.name
    commit = repository.add_migration(GOOD_MIGRATION)
    result = rehearsal_step(context(app, commit=commit, tar=repository.archive(commit)))
    assert result.status is StepStatus.PASSED, result.details["lines"]
    assert result.details["source"] == "newest verified backup (no pre-deploy snapshot)"
    assert result.details["backup"] == newest.name
    assert result.details["shape"]["columns_added"] == {"tasks": ["priority INTEGER NOT NULL DEFAULT 0"]}
    assert "column tasks.priority INTEGER NOT NULL DEFAULT 0 added" in result.details["lines"]
    assert result.details["warnings"] == []  # attended: the operator's own commit, no gate sandbox to miss


def test_without_a_snapshot_a_pages_app_rehearses_on_its_newest_generation(tmp_path, production, repository):
    """An app with kind = "pages" and no pre-deploy snapshot has no whole-file backup to copy:
    the newest verified generation is rebuilt for the rehearsal."""
    app = app_settings(tmp_path, production)
    app.backup.kind = "pages"
    older = take_verified_backup(production, app.backup.directory, minutes_ago=60)
    generation = take_generation(production, app.backup, now=datetime.now(timezone.utc), app="tasks")
    commit = repository.add_migration(GOOD_MIGRATION)
    result = rehearsal_step(context(app, commit=commit, tar=repository.archive(commit)))
    assert result.status is StepStatus.PASSED, result.details["lines"]
    assert result.details["source"] == "newest verified backup (no pre-deploy snapshot)"
    assert result.details["backup"] == generation.manifest.name != older.name
    assert any(line.startswith("ok     copy ") and f"{generation.manifest.name}: page hashes ok, rebuilt " in line
               for line in result.details["lines"]), result.details["lines"]


def test_only_when_paths_change_skips_a_commit_that_touches_none_of_them(tmp_path, production, repository):
    app = app_settings(tmp_path, production, only_when_paths_change=["app.py", "migrations/*"])
    app.deploy.repository = repository.path
    take_verified_backup(production, app.backup.directory)
    live = repository.sha()
    docs_only = repository.commit("docs", {"docs/usage.md": "how to use it\n"})
    result = rehearsal_step(context(app, commit=docs_only, tar=repository.archive(docs_only), replaces=live))
    assert result.skipped == (f"{docs_only[:12]} changes none of app.py, migrations/* since {live[:12]} "
                              "(1 path(s) changed)")
    migrated = repository.add_migration(GOOD_MIGRATION)
    result = rehearsal_step(context(app, commit=migrated, tar=repository.archive(migrated), replaces=docs_only))
    assert result.status is StepStatus.PASSED, result.details.get("lines")


def test_only_when_paths_change_diffs_in_the_repository_the_deploy_read_its_commits_from(tmp_path, production,
                                                                                       repository):
    """The gate's deploys read pushed commits from its mirror; [deploy] repository, on the gate's
    host, may be another clone that lacks them (here: no repository at all)."""
    app = app_settings(tmp_path, production, only_when_paths_change=["app.py"])
    app.deploy.repository = tmp_path / "not-a-repository"
    live = repository.sha()
    docs_only = repository.commit("docs", {"docs/usage.md": "how to use it\n"})
    result = rehearsal_step(context(app, commit=docs_only, tar=repository.archive(docs_only), replaces=live,
                                    repository=repository.path))
    assert result.skipped == (f"{docs_only[:12]} changes none of app.py since {live[:12]} (1 path(s) changed)")


def test_only_when_paths_change_rehearses_when_the_repository_cannot_tell(tmp_path, production, repository):
    app = app_settings(tmp_path, production, only_when_paths_change=["app.py"])
    app.deploy.repository = tmp_path / "not-a-repository"
    take_verified_backup(production, app.backup.directory)
    commit = repository.commit("docs", {"README.md": "hello\n"})
    result = rehearsal_step(context(app, commit=commit, tar=repository.archive(commit), replaces="b" * 40))
    assert result.status is StepStatus.PASSED, result.details.get("lines")


def test_a_drill_image_switches_the_rehearsal_to_docker_mode_without_a_command(tmp_path, production):
    """Docker mode builds the image from the tar; the rehearsal's command is for command mode only."""
    from railguard.rehearsal.rehearse import effective_drill

    app = app_settings(tmp_path, production, command=[sys.executable, "{tree}/app.py"])
    app.rehearsal.timeout = "7s"  # type: ignore[assignment]  # validated into a timedelta
    app.drill = DrillSettings(image="tasks:live", start_timeout="60s")  # type: ignore[arg-type]
    drill = effective_drill(app)
    assert drill.command == [] and drill.image == "tasks:live"
    assert drill.start_timeout.total_seconds() == 7


def test_deploy_steps_rehearse_an_app_with_a_drill_and_leave_the_others_alone(tmp_path, production):
    from railguard.rehearsal.steps import deploy_steps

    drilled = app_settings(tmp_path, production)
    assert rehearsal_step in deploy_steps(settings_for(drilled), "tasks", drilled).pre
    switched_off = app_settings(tmp_path, production, enabled=False)
    assert rehearsal_step not in deploy_steps(settings_for(switched_off), "tasks", switched_off).pre
    plain = AppSettings(database=production)
    assert rehearsal_step not in deploy_steps(settings_for(plain), "tasks", plain).pre


def test_a_rehearsal_that_raises_is_reported_by_its_given_name(tmp_path, production, repository):
    """No snapshot and no verified backup to rehearse on: the step raises (NotFound) and the
    result that blocks the deploy (what the CLI and the gate print) says ``rehearsal``, the
    name the step was made with, not the name of its function (``rehearsal_step``)."""
    app = app_settings(tmp_path, production)
    commit = repository.add_migration(GOOD_MIGRATION)
    [result] = run_pre_deploy([rehearsal_step], context(app, commit=commit, tar=repository.archive(commit)))
    assert (result.name, result.status) == ("rehearsal", StepStatus.FAILED)
    assert result.summary == f"no verified backup in {tmp_path / 'backups'}"


def test_every_pre_deploy_step_has_the_name_its_results_carry(tmp_path, production):
    from railguard.rehearsal.steps import deploy_steps

    app = app_settings(tmp_path, production)
    assert [step.name for step in deploy_steps(settings_for(app), "tasks", app).pre] == \
        ["snapshot", "rehearsal", "monitor"]
