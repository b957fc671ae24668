"""A retention rule left out is off (docs/configuration.md); 7 daily + 4 weekly is the default
only for a table that sets no rule at all; ``prune --dry-run`` says which policy is in effect."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from retention.helpers import write_backup_files

from railguard.cli.context import Context
from railguard.config import RetentionSettings
from railguard.errors import ExitCode
from railguard.retention import Policy, Within

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("table", "expected"), [
    ({}, Policy(daily=7, weekly=4)),
    ({"keep_monthly": 12}, Policy(monthly=12)),
    ({"keep_last": 10}, Policy(last=10)),
    ({"keep_within": "2d"}, Policy(within=Within.parse("2d"))),
    ({"keep_daily": 3, "keep_weekly": 0}, Policy(daily=3)),
    ({"keep_daily": 0}, Policy()),  # every rule given is off: refused by prune, never the default
])
def test_a_rule_left_out_is_off(table: dict, expected: Policy) -> None:
    assert Policy.from_settings(RetentionSettings(**table)) == expected


def test_only_a_table_without_rules_gets_the_default() -> None:
    from railguard.retention.policy import DEFAULT_POLICY

    assert Policy.from_settings(RetentionSettings()) is DEFAULT_POLICY
    assert Policy.from_settings(RetentionSettings(keep_daily=7, keep_weekly=4)) is not DEFAULT_POLICY


@pytest.fixture
def backups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(Context, "now", staticmethod(lambda: NOW))
    directory = tmp_path / "backups"
    for day in range(40):
        write_backup_files(directory, datetime(2026, 11, 27, 3, 30, tzinfo=timezone.utc) - timedelta(days=day))
    return directory


def _config(tmp_path: Path, directory: Path, retention: str) -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'[apps.tasks]\ndatabase = "/app/data/tasks.db"\n[apps.tasks.backup]\ndirectory = "{directory}"\n'
                    f"{retention}", encoding="utf-8")
    return path


@pytest.mark.parametrize(("retention", "line", "origin", "kept"), [
    ("", "policy: keep 7 daily, 4 weekly (periods in UTC), the default: [apps.tasks.retention] sets no rule",
     "default", 9),
    ("[apps.tasks.retention]\nkeep_monthly = 12\n",
     "policy: keep 12 monthly (periods in UTC), from [apps.tasks.retention]", "configuration", 2),
    ("[apps.tasks.retention]\nkeep_last = 10\n",
     "policy: keep 10 last (periods in UTC), from [apps.tasks.retention]", "configuration", 10),
])
def test_dry_run_shows_the_policy_in_effect(tmp_path: Path, backups: Path, run_cli, retention: str, line: str,
                                             origin: str, kept: int) -> None:
    config = _config(tmp_path, backups, retention)

    text = run_cli("--config", config, "prune", "--dry-run")
    document = json.loads(run_cli("--config", config, "prune", "--dry-run", "--json").stdout)

    assert text.exit_code == ExitCode.OK, text.stderr
    assert text.stdout.splitlines()[0] == line
    assert document["policy_from"] == origin
    assert document["policy"] == line.split(" (")[0].removeprefix("policy: ")
    assert sum(d["action"] == "keep" for d in document["decisions"]) == kept
    expected_rules = {f"keep_{rule}": 0 for rule in ("last", "hourly", "daily", "weekly", "monthly", "yearly")}
    expected_rules["keep_within"] = None
    expected_rules.update({"default": {"keep_daily": 7, "keep_weekly": 4},
                           "configuration": {}}[origin])
    if "keep_monthly" in retention:
        expected_rules["keep_monthly"] = 12
    if "keep_last" in retention:
        expected_rules["keep_last"] = 10
    assert document["rules"] == expected_rules


def test_flags_say_they_are_the_policy(tmp_path: Path, backups: Path, run_cli) -> None:
    result = run_cli("--config", _config(tmp_path, backups, ""), "prune", "--dry-run", "--keep-last", "3")
    assert result.stdout.splitlines()[0] == "policy: keep 3 last (periods in UTC), from the --keep-* flags"
