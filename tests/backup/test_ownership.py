"""A backup belongs to an app by its manifest (app name and source), never by its file name.

The attack of issue 14 item 8: apps ``a`` and ``b`` both keep their database in a file called
``tasks.db``, so their backups are both named ``tasks-YYYYMMDD-HHmm``. Before, b's prune removed
a's only backup and a's restore put b's database in place, exit 0.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import create_tasks_database

from railguard.backup import take_backup
from railguard.cli.context import Context
from railguard.config import BackupSettings
from railguard.errors import ExitCode

UTC = timezone.utc
T0 = datetime(2026, 11, 27, 3, 30, tzinfo=UTC)


def _titles(database: Path) -> set[str]:
    connection = sqlite3.connect(database)
    try:
        return {row[0] for row in connection.execute("SELECT title FROM tasks")}
    finally:
        connection.close()


def _mark(database: Path, title: str) -> None:
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("INSERT INTO tasks (title) VALUES (?)", (title,))
    connection.close()


class TwoApps:
    """Apps a and b, databases both named tasks.db; b's backups sit in a's directory (as the
    shared default directory left them), a's only backup is the older one."""

    def __init__(self, tmp_path: Path, *, legacy: bool) -> None:
        self.a_db = create_tasks_database(_mkdir(tmp_path / "a") / "tasks.db", rows=1)
        self.b_db = create_tasks_database(_mkdir(tmp_path / "b") / "tasks.db", rows=1)
        _mark(self.a_db, "row of a")
        _mark(self.b_db, "row of b")
        self.shared = tmp_path / "backups"
        self.config = tmp_path / "railguard.toml"
        self.config.write_text(
            f'[apps.a]\ndatabase = "{self.a_db}"\n[apps.a.backup]\ndirectory = "{self.shared}"\n'
            f'[apps.b]\ndatabase = "{self.b_db}"\n[apps.b.backup]\ndirectory = "{tmp_path / "b-backups"}"\n',
            encoding="utf-8")
        settings = BackupSettings(directory=self.shared)
        # Manifests written before railguard recorded the app (legacy) have only the source.
        self.a_backup = take_backup(self.a_db, settings, now=T0, **({} if legacy else {"app": "a"})).manifest.name
        self.b_backups = [take_backup(self.b_db, settings, now=T0 + timedelta(days=day),
                                      **({} if legacy else {"app": "b"})).manifest.name for day in (1, 2)]


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.fixture(params=["legacy manifests", "manifests with app"])
def apps(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TwoApps:
    monkeypatch.setattr(Context, "now", staticmethod(lambda: T0 + timedelta(days=3)))
    return TwoApps(tmp_path, legacy=request.param == "legacy manifests")


def test_listing_shows_only_the_apps_own_backups(apps: TwoApps, run_cli) -> None:
    result = run_cli("--config", apps.config, "--app", "a", "backups", "list", "--json")
    assert [entry["name"] for entry in json.loads(result.stdout)["backups"]] == [apps.a_backup]


def test_prune_of_one_app_never_removes_the_others_backups(apps: TwoApps, run_cli) -> None:
    result = run_cli("--config", apps.config, "--app", "a", "prune", "--keep-last", "1", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [d["name"] for d in json.loads(result.stdout)["decisions"]] == [apps.a_backup]
    for name in [apps.a_backup, *apps.b_backups]:
        assert (apps.shared / f"{name}.manifest.json").exists()


def test_restore_latest_takes_the_apps_own_backup_not_a_newer_one_of_another_app(apps: TwoApps, run_cli) -> None:
    _mark(apps.a_db, "written after the backup")
    result = run_cli("--config", apps.config, "--app", "a", "restore", "--force", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["backup"] == apps.a_backup
    assert _titles(apps.a_db) >= {"row of a"} and "row of b" not in _titles(apps.a_db)


def test_restore_refuses_another_apps_backup_by_name(apps: TwoApps, run_cli) -> None:
    before = apps.a_db.read_bytes()
    result = run_cli("--config", apps.config, "--app", "a", "restore", apps.b_backups[-1], "--force")
    assert result.exit_code == ExitCode.USAGE
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: backup {apps.b_backups[-1]} is not app 'a''s: ")
    assert str(apps.b_db) in lines[0]
    assert lines[1] == "hint: Restore it as the app that took it (--app NAME), or into another file with --to PATH"
    assert apps.a_db.read_bytes() == before


def test_another_apps_backup_restores_into_another_file_when_named(apps: TwoApps, run_cli, tmp_path: Path) -> None:
    target = tmp_path / "inspect.db"
    result = run_cli("--config", apps.config, "--app", "a", "restore", apps.b_backups[-1], "--to", target)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "row of b" in _titles(target)


def test_verify_latest_and_all_check_only_the_apps_own_backups(apps: TwoApps, run_cli) -> None:
    result = run_cli("--config", apps.config, "--app", "a", "backups", "verify", "--all", "--json")
    assert [r["name"] for r in json.loads(result.stdout)["results"]] == [apps.a_backup]


def test_a_restore_over_the_database_refuses_a_backup_taken_from_another_source(tmp_path: Path, run_cli,
                                                                               monkeypatch) -> None:
    monkeypatch.setattr(Context, "now", staticmethod(lambda: T0 + timedelta(days=1)))
    elsewhere = create_tasks_database(_mkdir(tmp_path / "elsewhere") / "tasks.db", rows=1)
    _mark(elsewhere, "row from elsewhere")
    database = create_tasks_database(_mkdir(tmp_path / "data") / "tasks.db", rows=1)
    directory = tmp_path / "backups"
    name = take_backup(elsewhere, BackupSettings(directory=directory), now=T0, app="tasks").manifest.name
    config = tmp_path / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{database}"\n[apps.tasks.backup]\ndirectory = "{directory}"\n')

    result = run_cli("--config", config, "restore", name, "--force")

    assert result.exit_code == ExitCode.USAGE
    assert f"it was taken from {elsewhere}, not from {database}" in result.stderr
    assert "row from elsewhere" not in _titles(database)


def test_the_configuration_refuses_two_apps_that_would_share_backup_names(tmp_path: Path, run_cli) -> None:
    config = tmp_path / "railguard.toml"
    config.write_text('[apps.a]\ndatabase = "/srv/a/tasks.db"\n[apps.b]\ndatabase = "/srv/b/tasks.db"\n')
    result = run_cli("--config", config, "status")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        f"error: {config}: apps.a and apps.b would share the backup names tasks-* in /app/data/backups "
        "(databases /srv/a/tasks.db and /srv/b/tasks.db)",
        "hint: Set apps.b.backup.directory to a directory of its own",
    ]


def test_a_flag_that_would_make_two_apps_share_names_is_refused_too(tmp_path: Path, run_cli) -> None:
    config = tmp_path / "railguard.toml"
    config.write_text(f'[apps.a]\ndatabase = "/srv/a/tasks.db"\n[apps.a.backup]\ndirectory = "{tmp_path / "a"}"\n'
                      f'[apps.b]\ndatabase = "/srv/b/tasks.db"\n[apps.b.backup]\ndirectory = "{tmp_path / "b"}"\n')
    result = run_cli("--config", config, "--app", "b", "backups", "list", "--dir", tmp_path / "a")
    assert result.exit_code == ExitCode.USAGE
    assert "apps.a and apps.b would share the backup names tasks-*" in result.stderr


def test_apps_with_different_database_names_may_share_a_directory(tmp_path: Path, run_cli) -> None:
    config = tmp_path / "railguard.toml"
    config.write_text('[apps.a]\ndatabase = "/srv/a/tasks.db"\n[apps.b]\ndatabase = "/srv/b/billing.db"\n')
    result = run_cli("--config", config, "--app", "a", "backups", "list", "--dir", tmp_path / "none")
    assert result.exit_code == ExitCode.OK, result.stderr


def test_apps_over_the_same_database_may_share_a_directory(tmp_path: Path, run_cli, tasks_db: Path) -> None:
    # A configuration that only monitors two URLs leaves both apps at the default database.
    config = tmp_path / "railguard.toml"
    config.write_text('[apps.a]\nurl = "http://127.0.0.1:1"\n[apps.b]\nurl = "http://127.0.0.1:2"\n')
    assert run_cli("--config", config, "--app", "a", "backups", "list", "--dir", tmp_path / "none").exit_code == 0

    directory = tmp_path / "backups"
    name = take_backup(tasks_db, BackupSettings(directory=directory), now=T0).manifest.name  # no app: legacy
    config.write_text(f'[apps.a]\ndatabase = "{tasks_db}"\n[apps.b]\ndatabase = "{tasks_db}"\n')
    for app in ("a", "b"):
        listing = run_cli("--config", config, "--app", app, "backups", "list", "--dir", directory, "--json")
        assert [entry["name"] for entry in json.loads(listing.stdout)["backups"]] == [name]


def test_a_listing_resolves_each_manifest_source_once_not_once_per_backup(tmp_path: Path, tasks_db: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A year of backups names the same source in every manifest; comparing it with every other
    app's database on disk for each backup made `status` take seconds (3,650 backups: 3.9 s)."""
    from railguard.backup import catalog

    directory = _mkdir(tmp_path / "backups")
    settings = BackupSettings(directory=directory)
    for day in range(12):
        take_backup(tasks_db, settings, now=datetime(2026, 11, 1, 3, 30, tzinfo=timezone.utc) + timedelta(days=day),
                    app="tasks")
    others = tuple((f"other{n}", tmp_path / f"other{n}" / "tasks.db") for n in range(3))
    owner = catalog.Owner("tasks", tasks_db, others)
    resolved: list[str] = []
    real = catalog.os.path.realpath
    monkeypatch.setattr(catalog.os.path, "realpath", lambda path: resolved.append(path) or real(path))
    records = catalog.list_backups(directory, owner)
    assert [record.is_good for record in records] == [True] * 12
    # One comparison of the one source with each of the three other databases: two paths each.
    assert len(resolved) == 2 * len(others)
    # And a manifest from another app's database is still that app's.
    before_app_names = dataclasses.replace(records[0].manifest, app=None, source=str(others[1][1]))
    assert owner.refusal(before_app_names) == f"it was taken from {others[1][1]}, the database of app 'other1'"
