"""``kind = "pages"`` through the commands: backup makes a generation, list shows it, restore puts it back."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from railguard.backup import take_backup
from railguard.backup.catalog import Owner, list_backups
from railguard.config import BackupSettings, load_settings
from railguard.errors import ExitCode
from railguard.jobs import backup_job
from railguard.pages.catalog import list_generations
from railguard.pages.store import pack_names, pack_path
from railguard.pages.writer import take_generation
from railguard.retention import Policy, prune_generations

from pages.conftest import T0, Generations, contents
from restore.conftest import dump


def _config(tmp_path: Path, database: Path, extra: str = "") -> Path:
    config = tmp_path / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{database}"\nurl = "http://127.0.0.1:3000"\n'
                      f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\nkind = "pages"\n{extra}',
                      encoding="utf-8")
    return config


def _add(database: Path, title: str) -> None:
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("INSERT INTO tasks (title) VALUES (?)", (title,))
    connection.close()


def test_backup_makes_a_generation_and_list_shows_it(tmp_path: Path, database: Path, run_cli) -> None:
    config = _config(tmp_path, database)
    first = run_cli("--config", config, "backup")
    assert first.exit_code == ExitCode.OK, first.stderr
    assert first.stdout.startswith(f"generation {tmp_path / 'backups' / 'tasks.pages'}/tasks-")
    assert "quick_check ok" in first.stdout  # a generation's default check (pages/writer.py, generation_check)
    _add(database, "one more")
    second = run_cli("--config", config, "backup", "--json")
    document = json.loads(second.stdout)
    assert document["manifest"]["kind"] == "pages" and "pages" not in document["manifest"]
    assert 0 < document["manifest"]["new_pages"] < document["manifest"]["page_count"]

    listed = json.loads(run_cli("--config", config, "backups", "list", "--json").stdout)["backups"]
    assert [(entry["kind"], entry["good"]) for entry in listed] == [("pages", True), ("pages", True)]
    assert listed[1]["size_stored"] < listed[0]["size_stored"]
    table = run_cli("--config", config, "backups", "list")
    assert all(entry["name"] in table.stdout for entry in listed)
    thorough = run_cli("--config", config, "backup", "--check", "integrity")
    assert thorough.exit_code == ExitCode.OK and "integrity_check ok" in thorough.stdout, thorough.stderr


def test_restore_puts_back_the_newest_generation_through_the_safe_restore(tmp_path: Path, database: Path,
                                                                         run_cli) -> None:
    config = _config(tmp_path, database)
    assert run_cli("--config", config, "backup").exit_code == ExitCode.OK
    before = dump(database)
    _add(database, "written after the generation")
    after = dump(database)

    result = run_cli("--config", config, "restore")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert dump(database) == before
    connection = sqlite3.connect(database)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()
    safety = [path for path in database.parent.iterdir() if ".before-restore-" in path.name]
    assert len(safety) == 1 and dump(safety[0]) == after
    assert "restored tasks-" in result.stdout


def test_restore_at_takes_the_newest_generation_at_or_before_that_minute(tmp_path: Path, database: Path,
                                                                        settings: BackupSettings, run_cli) -> None:
    config = _config(tmp_path, database)
    seen = []
    for minute in (1, 5, 9):
        _add(database, f"at minute {minute}")
        take_generation(database, settings, now=T0 + timedelta(minutes=minute, seconds=30), app="tasks")
        seen.append(contents(database))
    target = tmp_path / "at.db"
    result = run_cli("--config", config, "restore", "--at", "2026-12-01 14:05", "--to", target)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "restored tasks-20261201-1405 " in result.stdout  # 14:05:30 is "at 14:05"
    assert contents(target) == seen[1]
    early = run_cli("--config", config, "restore", "--at", "2026-12-01 13:59", "--to", tmp_path / "early.db")
    assert early.exit_code == ExitCode.NOT_FOUND
    assert early.stderr.startswith("error: no verified backup or generation taken at or before 2026-12-01 13:59")
    bad = run_cli("--config", config, "restore", "--at", "yesterday", "--to", tmp_path / "bad.db")
    assert bad.exit_code == ExitCode.USAGE
    assert bad.stderr.splitlines()[0] == "error: --at 'yesterday' is not a time of the form 'YYYY-MM-DD HH:MM'"


def test_a_damaged_pack_is_refused_and_the_database_is_unchanged(tmp_path: Path, database: Path,
                                                                 settings: BackupSettings, run_cli) -> None:
    config = _config(tmp_path, database)
    manifest = take_generation(database, settings, now=T0, app="tasks").manifest
    pack = pack_path(settings.directory / "tasks.pages", manifest.packs[0])
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x01
    pack.write_bytes(bytes(data))
    before = dump(database)
    result = run_cli("--config", config, "restore")
    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert result.stderr.splitlines()[0] == (f"error: generation tasks-20261201-1400: pack {manifest.packs[0][:12]} "
                                             f"does not hash to its name (changed since it was written)")
    assert dump(database) == before
    assert not any(".before-restore-" in path.name or path.name.startswith(".railguard-work")
                   for path in database.parent.iterdir())


@pytest.mark.parametrize(("extra", "message"), [
    ('compression = "gzip"\n', 'compression: kind = "pages" stores its packs with zstd, got \'gzip\''),
])
def test_settings_pages_cannot_honour_are_refused(tmp_path: Path, database: Path, run_cli, extra: str,
                                                  message: str) -> None:
    result = run_cli("--config", _config(tmp_path, database, extra), "backup")
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr.splitlines()[0]


def test_retention_removes_generations_then_the_packs_only_they_needed(
        tmp_path: Path, database: Path, settings: BackupSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("railguard.pages.writer.PACK_BYTES", 16 * 4096)
    generations = Generations(database, settings)
    generations.take()
    for step in range(3):
        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("DELETE FROM tasks WHERE id % 3 = ?", (step,))
        connection.execute("VACUUM")
        connection.close()
        generations.take()
    owner = Owner.of(load_settings(_config(tmp_path, database)), "tasks")
    result = prune_generations(settings.directory, owner, Policy(last=2), now=T0 + timedelta(hours=1), tz="UTC")
    assert result.removed == ["tasks-20261201-1401", "tasks-20261201-1402"]
    kept = [record.manifest for record in list_generations(settings.directory, owner)]
    assert [manifest.name for manifest in kept if manifest] == ["tasks-20261201-1403", "tasks-20261201-1404"]
    assert set(pack_names(generations.store)) == {pack for manifest in kept if manifest for pack in manifest.packs}
    for manifest in kept:
        assert manifest is not None
        generations.rebuilt_contents(manifest, tmp_path / "scratch")
    assert contents(database) == generations.rebuilt_contents(kept[-1], tmp_path / "scratch")




def test_status_counts_the_newest_generation_as_the_recovery_point(tmp_path: Path, database: Path,
                                                                  run_cli) -> None:
    config = _config(tmp_path, database)
    assert run_cli("--config", config, "backup").exit_code == ExitCode.OK
    result = run_cli("--config", config, "status", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)["rows"] if row["app"] == "tasks"}
    assert rows["backup"]["state"] == "ok", rows
    assert rows["backup"]["detail"].endswith(" old (generation: the recovery point)")
    assert rows["verified"]["detail"].endswith(": quick_check ok")


def test_prune_removes_generations_and_says_which(tmp_path: Path, database: Path, settings: BackupSettings,
                                                  run_cli) -> None:
    config = _config(tmp_path, database)
    for minute in (1, 2, 3):
        _add(database, f"minute {minute}")
        take_generation(database, settings, now=T0 + timedelta(minutes=minute), app="tasks")
    dry = run_cli("--config", config, "prune", "--keep-last", "1", "--dry-run", "--json")
    assert dry.exit_code == ExitCode.OK, dry.stderr
    assert len(list_generations(settings.directory, "tasks")) == 3
    result = run_cli("--config", config, "prune", "--keep-last", "1", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["removed"] == ["tasks-20261201-1401", "tasks-20261201-1402"]
    [kept] = list_generations(settings.directory, "tasks")
    assert kept.name == "tasks-20261201-1403"
    assert set(pack_names(settings.directory / "tasks.pages")) == set(kept.manifest.packs if kept.manifest else [])


def test_a_kept_generation_survives_the_prune(tmp_path: Path, database: Path, settings: BackupSettings,
                                              run_cli) -> None:
    config = _config(tmp_path, database)
    for minute in (1, 2, 3):
        _add(database, f"minute {minute}")
        take_generation(database, settings, now=T0 + timedelta(minutes=minute), app="tasks")
    kept = run_cli("--config", config, "backups", "keep", "tasks-20261201-1401", "--reason", "audit")
    assert kept.exit_code == ExitCode.OK, kept.stderr
    assert kept.stdout.startswith("tasks-20261201-1401: ")
    result = run_cli("--config", config, "prune", "--keep-last", "1", "--json")
    assert json.loads(result.stdout)["removed"] == ["tasks-20261201-1402"]
    assert [record.name for record in list_generations(settings.directory, "tasks")] == [
        "tasks-20261201-1401", "tasks-20261201-1403"]


def test_unkeep_takes_a_generation_by_name_and_latest(tmp_path: Path, database: Path, settings: BackupSettings,
                                                       run_cli) -> None:
    config = _config(tmp_path, database)
    for minute in (1, 2):
        _add(database, f"minute {minute}")
        take_generation(database, settings, now=T0 + timedelta(minutes=minute), app="tasks")
    for name in ("latest", "tasks-20261201-1401"):
        assert run_cli("--config", config, "backups", "keep", name, "--reason", "audit").exit_code == ExitCode.OK
    latest = run_cli("--config", config, "backups", "unkeep", "latest")
    assert latest.exit_code == ExitCode.OK, latest.stderr
    assert latest.stdout == "tasks-20261201-1402: protection removed\n"
    again = run_cli("--config", config, "backups", "unkeep", "tasks-20261201-1402")
    assert again.exit_code == ExitCode.OK, again.stderr
    assert again.stdout == "tasks-20261201-1402: was not protected\n"
    older = run_cli("--config", config, "backups", "unkeep", "tasks-20261201-1401", "--json")
    assert json.loads(older.stdout) == {"ok": True, "app": "tasks", "name": "tasks-20261201-1401",
                                        "was_protected": True}
    unknown = run_cli("--config", config, "backups", "unkeep", "tasks-20261201-1459")
    assert unknown.exit_code == ExitCode.NOT_FOUND


def test_prune_of_a_pages_app_also_prunes_the_whole_file_backups_beside_its_generations(
        tmp_path: Path, database: Path, settings: BackupSettings, run_cli) -> None:
    """Pre-deploy snapshots are whole-file backups even when the app takes generations: once their
    protection ends, the same policy must apply to them, or they pile up in the directory."""
    config = _config(tmp_path, database)
    whole_file = BackupSettings(directory=settings.directory)
    for minute in (1, 2, 3):
        _add(database, f"minute {minute}")
        take_backup(database, whole_file, now=T0 + timedelta(minutes=minute), app="tasks")
        take_generation(database, settings, now=T0 + timedelta(minutes=minute, seconds=30), app="tasks")
    result = run_cli("--config", config, "prune", "--keep-last", "1", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    document = json.loads(result.stdout)
    assert document["removed"] == ["tasks-20261201-1401-2", "tasks-20261201-1402-2"]
    assert document["whole_file"]["removed"] == ["tasks-20261201-1401", "tasks-20261201-1402"]
    assert [record.name for record in list_backups(settings.directory, "tasks")] == ["tasks-20261201-1403"]
    text = run_cli("--config", config, "prune", "--keep-last", "1")
    assert "whole-file backups beside the generations" in text.stdout


def test_the_backup_job_of_a_pages_app_prunes_the_whole_file_backups_beside_it(
        tmp_path: Path, database: Path, settings: BackupSettings) -> None:
    config = _config(tmp_path, database, "[apps.tasks.retention]\nkeep_last = 1\n")
    loaded = load_settings(config)
    whole_file = BackupSettings(directory=settings.directory)
    for minute in (1, 2):
        take_backup(database, whole_file, now=T0 + timedelta(minutes=minute), app="tasks")
    report = backup_job(loaded, "tasks", loaded.apps["tasks"], now=T0 + timedelta(minutes=3))
    assert report.steps["prune"]["whole_file"]["removed"] == ["tasks-20261201-1401"]
    assert [record.name for record in list_backups(settings.directory, "tasks")] == ["tasks-20261201-1402"]
    assert [record.name for record in list_generations(settings.directory, "tasks")] == ["tasks-20261201-1403"]
