"""Protected backups: a backup taken by hand never costs the nightly one its place, `--keep` and
`backups keep` protect from prune (restic's --keep-tag), and every removal is named in the output."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from retention.helpers import write_backup_files

from railguard.backup import list_backups
from railguard.cli.context import Context
from railguard.errors import ExitCode

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)  # a Friday morning, after the nightly backup
NIGHTLY = "tasks-20261127-0330"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def set_to(moment: datetime) -> None:
        monkeypatch.setattr(Context, "now", staticmethod(lambda: moment))

    set_to(NOW)
    return set_to


@pytest.fixture
def setup(tmp_path: Path, tasks_db: Path, clock) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    directory = tmp_path / "backups"
    for day in range(0, 10):  # the nightly backups, today's included
        write_backup_files(directory, datetime(2026, 11, 27, 3, 30, tzinfo=timezone.utc) - timedelta(days=day))
    config = tmp_path / "railguard.toml"
    config.write_text(f'timezone = "UTC"\n[apps.tasks]\ndatabase = "{tasks_db}"\n'
                      f'[apps.tasks.backup]\ndirectory = "{directory}"\n', encoding="utf-8")
    return config, directory


def names(directory: Path) -> list[str]:
    return [record.name for record in list_backups(directory, "tasks")]


def test_a_backup_by_hand_on_the_day_of_the_nightly_one_keeps_the_nightly_one(setup, run_cli) -> None:  # type: ignore[no-untyped-def]
    config, directory = setup
    result = run_cli("--config", config, "backup")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert NIGHTLY in names(directory) and "tasks-20261127-1000" in names(directory)
    # The text output says what was protected and what prune removed: 7 daily are the nightly
    # ones of the 21st to the 27th (the protected one takes no day), weekly adds nothing older
    # (the 22nd is week 47's newest), so the 18th to the 20th go.
    lines = result.stdout.splitlines()
    assert lines[1] == "protected: taken by hand (until 2026-12-04 10:00 UTC)"
    assert lines[2] == ("pruned here (keep 7 daily, 4 weekly): "
                        "tasks-20261118-0330, tasks-20261119-0330, tasks-20261120-0330")
    assert names(directory)[0] == "tasks-20261121-0330"
    document = json.loads(run_cli("--config", config, "prune", "--dry-run", "--json").stdout)
    assert document["protected"] == [{"name": "tasks-20261127-1000", "reason": "taken by hand",
                                      "until": "2026-12-04T10:00:00+00:00", "since": "2026-11-27T10:00:00+00:00"}]
    nightly = next(d for d in document["decisions"] if d["name"] == NIGHTLY)
    assert nightly["action"] == "keep" and nightly["reasons"][0] == "daily #1"


def test_the_json_output_of_a_backup_names_what_it_pruned_and_its_protection(setup, run_cli) -> None:  # type: ignore[no-untyped-def]
    config, _ = setup
    document = json.loads(run_cli("--config", config, "backup", "--json").stdout)
    assert document["protection"]["reason"] == "taken by hand"
    assert document["steps"]["prune"]["removed"] == [f"tasks-202611{day}-0330" for day in (18, 19, 20)]
    assert document["steps"]["prune"]["protected"][0]["name"] == "tasks-20261127-1000"


def test_the_manual_protection_is_configurable_and_off_for_the_schedule(setup, run_cli) -> None:  # type: ignore[no-untyped-def]
    config, directory = setup
    scheduled = run_cli("--config", config, "backup", "--scheduled", "--json")
    assert json.loads(scheduled.stdout)["protection"] is None
    assert NIGHTLY not in names(directory)  # the newer backup of the same day is the day's: as restic does
    config.write_text(config.read_text() + 'keep_manual = "0s"\n', encoding="utf-8")
    second = run_cli("--config", config, "backup", "--json")
    assert json.loads(second.stdout)["protection"] is None, second.stdout
    config.write_text(config.read_text().replace('keep_manual = "0s"', 'keep_manual = "2d"'), encoding="utf-8")
    until = json.loads(run_cli("--config", config, "backup", "--json").stdout)["protection"]["until"]
    assert until == "2026-11-29T10:00:00+00:00"


def test_keep_protects_until_unkept_and_an_expired_protection_goes_with_its_backup(setup, run_cli, clock) -> None:  # type: ignore[no-untyped-def]
    config, directory = setup
    result = run_cli("--config", config, "backup", "--keep", "before the migration")
    assert result.stdout.splitlines()[1] == "protected: before the migration (until unkept)"
    assert (directory / "tasks-20261127-1000.keep.json").is_file()
    keep = run_cli("--config", config, "backups", "keep", "tasks-20261121-0330", "--for", "1d")
    assert keep.stdout == "tasks-20261121-0330: protected: kept by hand (until 2026-11-28 10:00 UTC)\n"
    listed = {b["name"]: b["protection"] for b in
              json.loads(run_cli("--config", config, "backups", "list", "--json").stdout)["backups"]}
    assert listed["tasks-20261127-1000"]["reason"] == "before the migration"
    assert listed["tasks-20261121-0330"]["until"] == "2026-11-28T10:00:00+00:00"
    assert listed[NIGHTLY] is None
    dry = run_cli("--config", config, "prune", "--keep-last", "1", "--dry-run")
    assert "(2 protected)" in dry.stdout and "would remove 5 of 8 backups" in dry.stdout
    # A month later: the --keep one is still protected, the one kept for a day is not.
    clock(NOW + timedelta(days=30))
    dry = run_cli("--config", config, "prune", "--keep-last", "1", "--dry-run")
    assert "protected: before the migration (until unkept)" in dry.stdout
    assert "(1 protected)" in dry.stdout
    assert run_cli("--config", config, "prune", "--keep-last", "1").exit_code == ExitCode.OK
    assert names(directory) == [NIGHTLY, "tasks-20261127-1000"]
    assert not (directory / "tasks-20261121-0330.keep.json").exists()
    unkept = run_cli("--config", config, "backups", "unkeep", "tasks-20261127-1000")
    assert unkept.stdout == "tasks-20261127-1000: protection removed\n"
    assert not (directory / "tasks-20261127-1000.keep.json").exists()


def test_bad_protections_are_refused_with_a_hint(setup, run_cli) -> None:  # type: ignore[no-untyped-def]
    config, directory = setup
    before = sorted(os.listdir(directory))
    empty = run_cli("--config", config, "backup", "--keep", " ")
    assert empty.exit_code == ExitCode.USAGE
    assert empty.stderr.splitlines()[0] == "error: --keep needs a reason"
    past = run_cli("--config", config, "backups", "keep", NIGHTLY, "--until", "2026-11-01")
    assert past.exit_code == ExitCode.USAGE and "is not in the future" in past.stderr
    unknown = run_cli("--config", config, "backups", "keep", "tasks-20261127-0339")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert sorted(os.listdir(directory)) == before  # nothing written, no backup taken


def test_an_unreadable_protection_still_protects(setup, run_cli, clock) -> None:  # type: ignore[no-untyped-def]
    config, directory = setup
    (directory / "tasks-20261118-0330.keep.json").write_text("{not json", encoding="utf-8")
    document = json.loads(run_cli("--config", config, "prune", "--dry-run", "--json").stdout)
    [protected] = document["protected"]
    assert protected["name"] == "tasks-20261118-0330" and "unreadable" in protected["reason"]


def test_a_protection_that_cannot_be_written_skips_the_prune_and_warns(setup, run_cli,  # type: ignore[no-untyped-def]
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import railguard.jobs as jobs

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jobs, "protect", full_disk)
    config, directory = setup
    before = names(directory)
    result = run_cli("--config", config, "backup")
    assert result.exit_code == ExitCode.WARNING
    assert result.stderr.splitlines() == ["warning: could not protect tasks-20261127-1000 from prune: "
                                          "No space left on device; prune skipped this time"]
    assert names(directory) == before + ["tasks-20261127-1000"]  # nothing removed in its favour


def test_unkeep_resolves_latest_and_removes_the_protection_of_a_backup_pruned_since(setup) -> None:  # type: ignore[no-untyped-def]
    from railguard.backup.protection import protect, read_protections, unkeep
    from railguard.errors import NotFound

    _, directory = setup
    protect(directory, NIGHTLY, "before the migration", until=None, now=NOW)
    assert unkeep(directory, "tasks", "latest") == (NIGHTLY, True)
    assert unkeep(directory, "tasks", NIGHTLY) == (NIGHTLY, False)
    # A protection left by a backup that is gone: removed by its name, with or without the suffix.
    protect(directory, "tasks-20250101-0330", "kept", until=None, now=NOW)
    assert unkeep(directory, "tasks", "tasks-20250101-0330.keep.json") == ("tasks-20250101-0330", True)
    assert read_protections(directory) == {}
    with pytest.raises(NotFound):
        unkeep(directory, "tasks", "tasks-20250101-0330")
    assert names(directory)[-1] == NIGHTLY, "unkeep removed no backup"
