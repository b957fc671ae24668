"""The pre-deploy snapshot: a verified, protected, replicated backup that names its deploy."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import create_tasks_database
from railguard.backup.catalog import Owner, list_backups
from railguard.backup.engine import take_backup
from railguard.backup.manifest import Manifest
from railguard.backup.protection import read_protections
from railguard.backup.verify import verify_backups
from railguard.config import load_settings
from railguard.destinations.base import Destination
from railguard.rehearsal.snapshot import find_snapshot, skip_reason, take_pre_deploy_snapshot
from railguard.retention import Policy, prune_backups

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
NEW = "a" * 40
OLD = "b" * 40


def settings_for(tmp_path: Path, extra: str = ""):
    path = tmp_path / "railguard.toml"
    path.write_text(f'[apps.tasks]\ndatabase = "{tmp_path / "tasks.db"}"\n'
                    f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\nprune = false\n{extra}')
    settings = load_settings(path)
    return settings, settings.apps["tasks"]


def test_the_snapshot_is_a_verified_backup_whose_manifest_names_the_deploy(tmp_path):
    create_tasks_database(tmp_path / "tasks.db")
    settings, app = settings_for(tmp_path)
    snapshot = take_pre_deploy_snapshot(settings, "tasks", app, commit=NEW, replaces=OLD, kind="deploy",
                                        deploy_id=7, now=NOW)
    manifest = Manifest.read(app.backup.directory / f"{snapshot.name}.manifest.json")
    assert manifest.deploy is not None
    assert (manifest.deploy.commit, manifest.deploy.replaces, manifest.deploy.kind, manifest.deploy.deploy_id) \
        == (NEW, OLD, "deploy", 7)
    assert manifest.verified and manifest.check_result == "ok" and manifest.app == "tasks"
    assert snapshot.path == app.backup.directory / manifest.file
    assert snapshot.record().data_path == snapshot.path and snapshot.record().manifest == manifest
    [outcome] = verify_backups(app.backup.directory, Owner.of(settings, "tasks", app), snapshot.name)
    assert outcome.ok, outcome.as_dict()


def test_the_snapshot_is_protected_for_the_configured_time(tmp_path):
    create_tasks_database(tmp_path / "tasks.db")
    settings, app = settings_for(tmp_path, '[apps.tasks.snapshot]\nkeep = "3d"\n')
    snapshot = take_pre_deploy_snapshot(settings, "tasks", app, commit=NEW, replaces=OLD, kind="deploy", now=NOW)
    protection = read_protections(app.backup.directory)[snapshot.name]
    assert protection.reason == f"pre-deploy snapshot for {NEW[:12]}"
    assert protection.until == NOW + timedelta(days=3)


def test_the_default_protection_is_fourteen_days_and_prune_keeps_it(tmp_path):
    create_tasks_database(tmp_path / "tasks.db")
    settings, app = settings_for(tmp_path)
    snapshot = take_pre_deploy_snapshot(settings, "tasks", app, commit=NEW, replaces=OLD, kind="deploy", now=NOW)
    assert read_protections(app.backup.directory)[snapshot.name].until == NOW + timedelta(days=14)
    later = take_backup(app.database, app.backup, now=NOW + timedelta(days=1), app="tasks")
    owner = Owner.of(settings, "tasks", app)
    result = prune_backups(app.backup.directory, owner, Policy(last=1), now=NOW + timedelta(days=13), tz="UTC")
    assert snapshot.name not in result.removed
    assert [r.name for r in list_backups(app.backup.directory, owner)] == [snapshot.name, later.manifest.name]
    # Once the protection ran out, the policy decides again.
    result = prune_backups(app.backup.directory, owner, Policy(last=1), now=NOW + timedelta(days=15), tz="UTC")
    assert result.removed == [snapshot.name]


def test_the_snapshot_goes_to_the_destinations_like_any_backup(tmp_path):
    create_tasks_database(tmp_path / "tasks.db")
    nas = tmp_path / "nas"
    nas.mkdir()
    settings, app = settings_for(tmp_path, f'[apps.tasks.destinations.nas]\nurl = "file://{nas}"\n')
    snapshot = take_pre_deploy_snapshot(settings, "tasks", app, commit=NEW, replaces=OLD, kind="release", now=NOW)
    assert [run["copied"] for run in snapshot.destinations] == [[snapshot.name]]
    assert snapshot.warnings == []
    [copy] = Destination("nas", app.destinations["nas"]).list_backups(snapshot.manifest.name.rsplit("-", 2)[0])
    assert copy.is_good and copy.name == snapshot.name
    assert copy.manifest is not None and copy.manifest.deploy == snapshot.manifest.deploy


def test_a_destination_that_fails_is_a_warning_and_the_snapshot_stands(tmp_path):
    create_tasks_database(tmp_path / "tasks.db")
    unmounted = tmp_path / "unmounted"
    settings, app = settings_for(tmp_path, f'[apps.tasks.destinations.nas]\nurl = "file://{unmounted}"\n')
    snapshot = take_pre_deploy_snapshot(settings, "tasks", app, commit=NEW, replaces=OLD, kind="deploy", now=NOW)
    assert snapshot.warnings and snapshot.warnings[0].startswith("destination nas")
    assert find_snapshot(app.backup.directory, Owner.of(settings, "tasks", app), NEW).name == snapshot.name


def test_no_snapshot_without_a_database_or_when_turned_off(tmp_path):
    settings, app = settings_for(tmp_path)
    assert skip_reason("tasks", app) == f"no database at {app.database} yet (a first deploy): nothing to roll back to"
    create_tasks_database(tmp_path / "tasks.db")
    assert skip_reason("tasks", app) is None
    settings, app = settings_for(tmp_path, "[apps.tasks.snapshot]\nenabled = false\n")
    assert skip_reason("tasks", app) == "[apps.tasks.snapshot] enabled = false"


def test_the_snapshot_of_a_commit_is_the_newest_one_taken_before_it_went_live(tmp_path):
    create_tasks_database(tmp_path / "tasks.db")
    settings, app = settings_for(tmp_path)
    owner = Owner.of(settings, "tasks", app)
    first = take_pre_deploy_snapshot(settings, "tasks", app, commit=NEW, replaces=OLD, kind="deploy", now=NOW)
    take_backup(app.database, app.backup, now=NOW + timedelta(minutes=1), app="tasks")  # a plain backup
    take_pre_deploy_snapshot(settings, "tasks", app, commit=OLD, replaces=NEW, kind="rollback",
                             now=NOW + timedelta(minutes=2))
    again = take_pre_deploy_snapshot(settings, "tasks", app, commit=NEW, replaces=OLD, kind="deploy",
                                     now=NOW + timedelta(minutes=3))
    assert find_snapshot(app.backup.directory, owner, NEW).name == again.name != first.name
    assert find_snapshot(app.backup.directory, owner, NEW[:7]).name == again.name
    assert find_snapshot(app.backup.directory, owner, "c" * 40) is None


def test_a_manifest_written_before_snapshots_existed_still_reads(tmp_path):
    create_tasks_database(tmp_path / "tasks.db")
    settings, app = settings_for(tmp_path)
    result = take_backup(app.database, app.backup, now=NOW, app="tasks")
    path = app.backup.directory / f"{result.manifest.name}.manifest.json"
    document = json.loads(path.read_bytes())
    assert document.pop("deploy") is None
    assert Manifest.parse(json.dumps(document)).deploy is None
    record = list_backups(app.backup.directory)[0]
    assert record.is_good


def test_backups_list_shows_a_snapshot_with_its_commits_and_the_end_of_its_protection(tmp_path, run_cli,
                                                                                        monkeypatch):
    from railguard.cli.context import Context

    monkeypatch.setattr(Context, "now", staticmethod(lambda: NOW + timedelta(hours=1)))
    create_tasks_database(tmp_path / "tasks.db")
    settings, app = settings_for(tmp_path)
    plain = take_backup(app.database, app.backup, now=NOW - timedelta(hours=1), app="tasks")
    snapshot = take_pre_deploy_snapshot(settings, "tasks", app, commit=NEW, replaces=OLD, kind="deploy",
                                        deploy_id=3, now=NOW)
    result = run_cli("--config", tmp_path / "railguard.toml", "backups", "list")
    assert result.exit_code == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if snapshot.name in line]
    assert f"pre-deploy snapshot for {NEW[:12]} (2026-12-15 10:00)" in row
    assert f"deploy {NEW[:12]} (replaces {OLD[:12]})" in row
    [other] = [line for line in result.stdout.splitlines() if plain.manifest.name in line]
    assert "replaces" not in other
    document = json.loads(run_cli("--config", tmp_path / "railguard.toml", "backups", "list", "--json").stdout)
    by_name = {entry["name"]: entry for entry in document["backups"]}
    assert by_name[snapshot.name]["deploy"] == {"commit": NEW, "replaces": OLD, "kind": "deploy", "deploy_id": 3}
    assert by_name[snapshot.name]["protection"]["until"] == "2026-12-15T10:00:00+00:00"
    assert by_name[plain.manifest.name]["deploy"] is None
