"""Prune runs after each successful backup (backup.prune, on by default) and never fails it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from retention.helpers import write_backup_files

import railguard.retention.prune as prune_module
from railguard.backup import list_backups
from railguard.cli.context import Context
from railguard.errors import ExitCode

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc)


@pytest.fixture
def setup(tmp_path: Path, tasks_db: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setattr(Context, "now", staticmethod(lambda: NOW))
    directory = tmp_path / "backups"
    for day in range(1, 21):  # twenty older nightly backups
        write_backup_files(directory, datetime(2026, 11, 27, 3, 30, tzinfo=timezone.utc) - timedelta(days=day))
    config = tmp_path / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{tasks_db}"\n[apps.tasks.backup]\ndirectory = "{directory}"\n',
                      encoding="utf-8")
    return config, directory


def test_a_backup_prunes_with_the_configured_policy_and_reports_it(setup: tuple[Path, Path], run_cli) -> None:
    config, directory = setup
    # As the daemon runs it: a backup taken by hand would be protected (test_protection.py).
    result = run_cli("--config", config, "backup", "--scheduled", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    prune = json.loads(result.stdout)["steps"]["prune"]
    assert prune["policy"] == "keep 7 daily, 4 weekly"
    # Daily: today's backup and the 6 days before it (21-27 November); weekly: the newest of
    # ISO weeks 48 and 47 are among those, weeks 46 and 45 add 15 and 8 November.
    assert prune["kept"] == 9 and len(prune["removed"]) == 12
    records = list_backups(directory, "tasks")
    assert [r.name[6:14] for r in records] == ["20261108", "20261115"] + [f"202611{d}" for d in range(21, 28)]
    assert records[-1].name == "tasks-20261127-0400"


def test_prune_can_be_turned_off(setup: tuple[Path, Path], run_cli) -> None:
    config, directory = setup
    config.write_text(config.read_text() + "prune = false\n", encoding="utf-8")
    result = run_cli("--config", config, "backup", "--json")
    assert result.exit_code == ExitCode.OK
    assert "prune" not in json.loads(result.stdout)["steps"]
    assert len(list_backups(directory, "tasks")) == 21


def test_a_failing_prune_is_a_warning_not_a_failed_backup(setup: tuple[Path, Path], run_cli,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config, directory = setup

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(prune_module, "remove_durably", refuse)
    result = run_cli("--config", config, "backup")
    assert result.exit_code == ExitCode.WARNING
    assert "warning: prune failed: cannot remove" in result.stderr
    assert any(r.name == "tasks-20261127-0400" and r.is_good for r in list_backups(directory, "tasks"))
