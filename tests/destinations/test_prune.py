"""Retention at a destination (:mod:`railguard.destinations.prune`), end to end: ``replicate
--prune`` and ``railguard prune`` apply each destination's own policy or the run's, report one
they cannot reach, and keep there what is protected here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from destinations.test_cli import s3_destination, write_config
from railguard.logfmt import read_lines

pytestmark = pytest.mark.timeout(120)

KEEP_3_LAST = {"keep_last": 3, "keep_daily": 0, "keep_weekly": 0}


def ten_daily_backups_and_a_nas(tmp_path: Path, backups) -> Path:  # type: ignore[no-untyped-def]
    """Ten daily backups here, Tue 10 to Thu 19 November 2026, and an empty file:// destination."""
    for day in range(10, 20):
        backups.take(f"2026-11-{day}T03:30:00+00:00")
    nas = tmp_path / "nas"
    nas.mkdir()
    return nas


def test_replicate_prunes_each_destination_with_its_own_policy_or_the_apps(run_cli, tmp_path, backups,
                                                                            moto_endpoint, bucket):
    nas = ten_daily_backups_and_a_nas(tmp_path, backups)
    write_config(tmp_path, backups.database, {
        "nas": {"url": f"file://{nas}"},  # the app's policy: 7 daily + 4 weekly
        "offsite": s3_destination(moto_endpoint, bucket, retention={"keep_daily": 2, "keep_weekly": 1})})

    result = run_cli("replicate", "--prune", "--json")

    assert result.exit_code == 0, result.stderr
    runs = {run["name"]: run for run in json.loads(result.stdout)["destinations"]}
    assert runs["nas"]["pruned"] == ["tasks-20261110-0330", "tasks-20261111-0330", "tasks-20261112-0330"]
    assert len(runs["offsite"]["pruned"]) == 8
    listed = json.loads(run_cli("backups", "list", "--dest", "offsite", "--json").stdout)
    assert [b["name"] for b in listed["backups"]] == ["tasks-20261118-0330", "tasks-20261119-0330"]
    assert len(list((tmp_path / "backups").glob("*.sqlite3.zst"))) == 10  # local copies untouched
    pruned = [line for line in read_lines(tmp_path / "backups" / "destinations.log") if line["event"] == "prune"]
    assert len(pruned) == 11 and all(line["reason"] for line in pruned)


def test_prune_applies_each_destinations_policy_and_reports_one_it_cannot_reach(run_cli, tmp_path, backups):
    nas = ten_daily_backups_and_a_nas(tmp_path, backups)
    write_config(tmp_path, backups.database, {
        "nas": {"url": f"file://{nas}", "retention": KEEP_3_LAST},
        "gone": {"url": f"file://{tmp_path / 'unmounted'}"}})
    assert json.loads(run_cli("replicate", "--dest", "nas", "--json").stdout)["ok"]

    dry = run_cli("prune", "--dry-run", "--json")
    assert dry.exit_code == 1  # "gone" cannot be reached
    remote = {item["name"]: item for item in json.loads(dry.stdout)["destinations"]}
    assert remote["nas"]["would_remove"] == [f"tasks-202611{day}-0330" for day in range(10, 17)]
    assert "is the disk mounted" in remote["gone"]["error"]
    assert len(list(nas.glob("*.sqlite3.zst"))) == 10  # a dry run removes nothing

    result = run_cli("prune")

    assert result.exit_code == 1
    assert "destination nas (keep 3 last): removed 7, keep 3" in result.stdout
    assert "warning: destination gone: not pruned" in result.stderr
    assert sorted(p.name for p in nas.glob("*.sqlite3.zst")) == [
        f"tasks-202611{day}-0330.sqlite3.zst" for day in (17, 18, 19)]


def test_a_backup_protected_here_is_kept_at_every_destination_by_its_prune(run_cli, tmp_path, backups):
    nas = ten_daily_backups_and_a_nas(tmp_path, backups)
    write_config(tmp_path, backups.database, {
        "nas": {"url": f"file://{nas}", "retention": KEEP_3_LAST}})
    assert json.loads(run_cli("replicate", "--json").stdout)["ok"]
    assert run_cli("backups", "keep", "tasks-20261110-0330", "--reason", "before the migration").exit_code == 0

    dry = run_cli("prune", "--dry-run", "--json")
    [remote] = json.loads(dry.stdout)["destinations"]
    assert remote["protected"] == ["tasks-20261110-0330"]
    assert remote["would_remove"] == [f"tasks-202611{day}-0330" for day in range(11, 17)]

    result = run_cli("prune")

    assert result.exit_code == 0, result.stderr
    assert "destination nas: protected here, kept there: tasks-20261110-0330" in result.stdout
    assert sorted(p.name for p in nas.glob("*.sqlite3.zst")) == [
        f"tasks-202611{day}-0330.sqlite3.zst" for day in (10, 17, 18, 19)]
