"""``prune_backups`` and ``railguard prune`` on real backup directories."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from retention.helpers import write_backup_files

import railguard.retention.prune as prune_module
from railguard.backup import list_backups, resolve_backup, verify_backup
from railguard.errors import ExitCode, VerifyFailed
from railguard.logfmt import read_lines
from railguard.retention import EmptyPolicy, Policy, prune_backups

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)


def daily_backups(directory: Path, days: int) -> list[str]:
    """One backup a night at 03:30 UTC, the newest on 27 November 2026; names newest first."""
    return [write_backup_files(directory, datetime(2026, 11, 27, 3, 30, tzinfo=UTC) - timedelta(days=day))
            for day in range(days)]


def config(tmp_path: Path, directory: Path, extra: str = "") -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'[apps.tasks]\ndatabase = "{tmp_path / "tasks.db"}"\n'
                    f'[apps.tasks.backup]\ndirectory = "{directory}"\n{extra}', encoding="utf-8")
    return path


def test_prune_removes_what_the_policy_does_not_keep_and_logs_each_removal(tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    names = daily_backups(directory, 10)

    result = prune_backups(directory, "tasks", Policy(daily=3), now=NOW, tz="UTC")

    assert [record.name for record in list_backups(directory, "tasks")] == sorted(names[:3])
    assert sorted(result.removed) == sorted(names[3:])
    removals = [line for line in read_lines(directory / "backup.log") if line.get("event") == "prune"]
    assert [line["backup"] for line in removals] == list(reversed(names[3:]))  # oldest first
    assert all(line["result"] == "removed" and line["reason"] == "not kept by any rule"
               and line["policy"] == "keep 3 daily" for line in removals)
    assert removals[0]["files"] == f"{names[-1]}.manifest.json,{names[-1]}.sqlite3.zst"


def test_prune_never_touches_files_that_are_not_backups(tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    daily_backups(directory, 5)
    others = {
        "notes.txt": b"the user's own file",
        "tasks-old-copy.sqlite3": b"named like a backup, but not our naming",
        "tasks-20200101-0000.sqlite3.bak": b"a user's renamed copy",
        "other-20200101-0000.sqlite3.zst": b"a backup of another database",
        ".tasks-20200101-0000.sqlite3.zst.tmp-1": b"a temporary file of a running backup",
    }
    for name, content in others.items():
        (directory / name).write_bytes(content)
    (directory / "failed").mkdir()
    (directory / "failed" / "tasks-20200101-0000.sqlite3").write_bytes(b"kept aside for inspection")

    prune_backups(directory, "tasks", Policy(last=1), now=NOW, tz="UTC")

    for name, content in others.items():
        assert (directory / name).read_bytes() == content
    assert (directory / "failed" / "tasks-20200101-0000.sqlite3").exists()
    assert len(list_backups(directory, "tasks")) == 1


def test_a_dry_run_removes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    daily_backups(directory, 6)
    before = sorted(path.name for path in directory.iterdir())
    result = prune_backups(directory, "tasks", Policy(last=2), now=NOW, tz="UTC", dry_run=True)
    assert len(result.plan.remove) == 4 and result.removed == []
    assert sorted(path.name for path in directory.iterdir()) == before


def test_an_empty_policy_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    daily_backups(directory, 3)
    with pytest.raises(EmptyPolicy, match="empty"):
        prune_backups(directory, "tasks", Policy(), now=NOW, tz="UTC")
    assert len(list_backups(directory, "tasks")) == 3


class Crash(BaseException):
    """Stands for the process dying between the two removals of one backup."""


def test_a_crash_between_the_two_removals_leaves_nothing_that_passes_for_a_good_backup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "backups"
    names = daily_backups(directory, 3)
    removed: list[str] = []
    real_remove = prune_module.remove_durably

    def remove_then_crash(path: Path) -> None:
        real_remove(path)
        removed.append(path.name)
        raise Crash

    monkeypatch.setattr(prune_module, "remove_durably", remove_then_crash)
    with pytest.raises(Crash):
        prune_backups(directory, "tasks", Policy(last=2), now=NOW, tz="UTC")
    monkeypatch.undo()

    oldest = names[-1]
    assert removed == [f"{oldest}.manifest.json"]  # the manifest goes first
    record = next(r for r in list_backups(directory, "tasks") if r.name == oldest)
    assert record.status == "incomplete: no manifest" and not record.is_good
    assert resolve_backup(directory, "tasks", "latest").name == names[0]
    with pytest.raises(VerifyFailed, match="incomplete: no manifest"):
        verify_backup(record, tmp_path)

    # The next prune finishes the job: the data file is a leftover older than the newest good backup.
    result = prune_backups(directory, "tasks", Policy(last=2), now=NOW, tz="UTC")
    assert result.removed == [oldest]
    assert [r.name for r in list_backups(directory, "tasks")] == sorted(names[:2])


def test_a_removal_that_fails_stops_the_prune_and_is_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "backups"
    daily_backups(directory, 4)

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(prune_module, "remove_durably", refuse)
    with pytest.raises(prune_module.PruneFailed, match="cannot remove tasks-20261124-0330"):
        prune_backups(directory, "tasks", Policy(last=1), now=NOW, tz="UTC")
    assert read_lines(directory / "backup.log")[-1]["result"] == "failed"
    assert len(list_backups(directory, "tasks")) == 4


# --- the command ---------------------------------------------------------------------------------

@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    from railguard.cli.context import Context

    monkeypatch.setattr(Context, "now", staticmethod(lambda: NOW))
    return NOW


def test_prune_command_applies_the_configured_policy(tmp_path: Path, run_cli, frozen_clock) -> None:
    directory = tmp_path / "backups"
    names = daily_backups(directory, 12)
    path = config(tmp_path, directory, "[apps.tasks.retention]\nkeep_daily = 2\nkeep_weekly = 0\n")

    result = run_cli("--config", path, "prune")

    assert result.exit_code == ExitCode.OK, result.stderr
    assert "policy: keep 2 daily (periods in UTC)" in result.stdout
    assert "removed 10 of 12 backups, kept 2" in result.stdout
    assert [r.name for r in list_backups(directory, "tasks")] == sorted(names[:2])


def test_keep_flags_replace_the_whole_configured_policy(tmp_path: Path, run_cli, frozen_clock) -> None:
    directory = tmp_path / "backups"
    names = daily_backups(directory, 12)
    path = config(tmp_path, directory)  # the default: 7 daily, 4 weekly

    result = run_cli("--config", path, "prune", "--keep-last", "3", "--json")

    assert result.exit_code == ExitCode.OK
    document = json.loads(result.stdout)
    assert document["policy"] == "keep 3 last"
    assert sorted(document["removed"]) == sorted(names[3:])
    assert [d["action"] for d in document["decisions"]] == ["keep"] * 3 + ["remove"] * 9


def test_dry_run_prints_every_decision_with_its_reasons(tmp_path: Path, run_cli, frozen_clock) -> None:
    directory = tmp_path / "backups"
    names = daily_backups(directory, 3)
    result = run_cli("--config", config(tmp_path, directory), "prune", "--dry-run", "--keep-daily", "1",
                     "--keep-within", "1d")
    assert result.exit_code == ExitCode.OK
    lines = result.stdout.splitlines()
    assert lines[1] == f"keep    {names[0]}  2026-11-27 03:30  within 1d, daily #1"
    assert lines[2] == f"remove  {names[1]}  2026-11-26 03:30  not kept by any rule"
    assert lines[-1] == "dry run: would remove 2 of 3 backups, keep 1; nothing was removed"
    assert len(list_backups(directory, "tasks")) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--keep-daily", "0"], "error: the retention policy is empty"),
    (["--keep-within", "2x"], "error: --keep-within: expected a duration"),
])
def test_prune_command_refuses_bad_policies(tmp_path: Path, run_cli, args: list[str], message: str) -> None:
    directory = tmp_path / "backups"
    daily_backups(directory, 3)
    result = run_cli("--config", config(tmp_path, directory), "prune", *args)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith(message)
    assert len(list_backups(directory, "tasks")) == 3


def test_an_empty_policy_in_the_configuration_is_refused(tmp_path: Path, run_cli) -> None:
    directory = tmp_path / "backups"
    path = config(tmp_path, directory, "[apps.tasks.retention]\nkeep_daily = 0\nkeep_weekly = 0\n")
    result = run_cli("--config", path, "prune")
    assert result.exit_code == ExitCode.USAGE
    assert "hint: Give at least one --keep-* flag" in result.stderr


def test_a_bad_keep_within_in_the_configuration_names_the_key(tmp_path: Path, run_cli) -> None:
    path = config(tmp_path, tmp_path / "backups", '[apps.tasks.retention]\nkeep_within = "2 weeks"\n')
    result = run_cli("--config", path, "prune")
    assert result.exit_code == ExitCode.USAGE
    assert "apps.tasks.retention.keep_within: expected a duration such as '2d'" in result.stderr


def test_damaged_backups_are_left_and_reported_with_a_warning_exit(tmp_path: Path, run_cli, frozen_clock) -> None:
    directory = tmp_path / "backups"
    names = daily_backups(directory, 4)
    damaged = directory / f"{names[2]}.manifest.json"
    damaged.write_text("{not json")

    result = run_cli("--config", config(tmp_path, directory), "prune", "--keep-last", "1")

    assert result.exit_code == ExitCode.WARNING
    assert f"warning: {names[2]} is unreadable manifest: left in place" in result.stderr
    assert damaged.exists() and (directory / f"{names[2]}.sqlite3.zst").exists()
    assert {r.name for r in list_backups(directory, "tasks")} == {names[0], names[2]}


def test_prune_waits_for_nobody_while_a_backup_holds_the_lock(tmp_path: Path, run_cli) -> None:
    from railguard.locking import exclusive_lock

    directory = tmp_path / "backups"
    daily_backups(directory, 3)
    with exclusive_lock(directory / ".tasks.lock", "a backup in progress"):
        result = run_cli("--config", config(tmp_path, directory), "prune", "--keep-last", "1")
    assert result.exit_code == ExitCode.BUSY
    assert "another railguard run is already working on backups of tasks" in result.stderr
    assert len(list_backups(directory, "tasks")) == 3


def test_prune_has_help_that_points_to_its_docs(run_cli) -> None:
    result = run_cli("prune", "--help")
    assert result.exit_code == 0 and "docs/retention.md" in result.stdout
    assert (Path(__file__).resolve().parents[2] / "docs" / "retention.md").is_file()


def test_prune_reports_a_leftover_it_removed_without_reading_it_again(tmp_path: Path, run_cli, frozen_clock) -> None:
    directory = tmp_path / "backups"
    names = daily_backups(directory, 3)
    leftover = write_backup_files(directory, datetime(2026, 11, 20, 3, 30, tzinfo=UTC), manifest=False)

    result = run_cli("--config", config(tmp_path, directory), "prune", "--keep-last", "2")

    assert result.exit_code == ExitCode.OK, result.stderr
    assert (f"remove  {leftover}  2026-11-20 03:30  leftover (incomplete: no manifest), older than the newest "
            "good backup") in result.stdout
    assert "removed 2 of 4 backups, kept 2" in result.stdout
    assert [r.name for r in list_backups(directory, "tasks")] == sorted(names[:2])


def _read_only(directory: Path, mounts: list[Path]) -> None:
    import subprocess

    for args in (["--bind", str(directory), str(directory)], ["-o", "remount,ro,bind", str(directory)]):
        completed = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            pytest.skip(f"cannot mount here ({completed.stderr.strip()}); this test needs root")
        if directory not in mounts:
            mounts.append(directory)


@pytest.fixture
def mounts():
    import subprocess

    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_prune_of_a_read_only_directory_is_a_clear_error_and_removes_nothing(tmp_path: Path, run_cli, mounts,
                                                                             frozen_clock) -> None:
    directory = tmp_path / "backups"
    names = daily_backups(directory, 4)
    _read_only(directory, mounts)

    result = run_cli("--config", config(tmp_path, directory), "prune", "--keep-last", "1")

    assert result.exit_code == ExitCode.ERROR, result.stderr
    assert result.stderr.splitlines() == [
        f"error: cannot prune {directory}: Read-only file system; nothing was removed",
        "hint: The backup directory is on a read-only filesystem or not writable by this user",
    ]
    assert [r.name for r in list_backups(directory, "tasks")] == sorted(names)

    # With nothing to remove there is nothing to lock: a read-only archive prunes cleanly.
    assert run_cli("--config", config(tmp_path, directory), "prune", "--keep-last", "4").exit_code == ExitCode.OK
