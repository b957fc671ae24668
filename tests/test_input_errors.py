"""Bad input is a one-line error with exit 3, never a traceback (issue 14 item 11, input parts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from railguard.errors import ExitCode


def _config(tmp_path: Path, body: str) -> Path:
    """``body`` goes after the [apps.tasks.backup] table: a busy_timeout line lands in it."""
    path = tmp_path / "railguard.toml"
    path.write_text(f'[apps.tasks]\ndatabase = "{tmp_path / "tasks.db"}"\n'
                    f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\n{body}', encoding="utf-8")
    return path


@pytest.mark.parametrize(("body", "key", "message"), [
    ("busy_timeout = inf\n", "apps.tasks.backup.busy_timeout", "expected a finite duration of at most 36500 days"),
    ("busy_timeout = 1e400\n", "apps.tasks.backup.busy_timeout", "expected a finite duration"),
    ("busy_timeout = nan\n", "apps.tasks.backup.busy_timeout", "expected a finite duration"),
    ('busy_timeout = "999999999999d"\n', "apps.tasks.backup.busy_timeout", "expected a finite duration"),
    ('busy_timeout = "30d"\n', "apps.tasks.backup.busy_timeout", "at most 24 days (SQLite counts it"),
    ('[apps.tasks.retention]\nkeep_within = "999999999999y"\n', "apps.tasks.retention.keep_within",
     "keep-within is at most 1000 years"),
    ('[apps.tasks.retention]\nkeep_within = "99999999999999h"\n', "apps.tasks.retention.keep_within",
     "keep-within is at most 1000 years"),
])
@pytest.mark.parametrize("command", [["prune", "--dry-run"], ["backup"], ["status"]])
def test_an_overflowing_value_is_a_configuration_error(tmp_path: Path, run_cli, body: str, key: str, message: str,
                                                       command: list[str]) -> None:
    result = run_cli("--config", _config(tmp_path, body), *command)
    assert result.exit_code == ExitCode.USAGE
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {tmp_path / 'railguard.toml'}: {key}: ") and message in first


def test_an_overflowing_keep_within_flag_is_a_usage_error(tmp_path: Path, run_cli) -> None:
    result = run_cli("--config", _config(tmp_path, ""), "prune", "--keep-within", "999999999999y")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: --keep-within: keep-within is at most 1000 years")


@pytest.mark.parametrize("args", [
    ["status", "--json", "--no-such-option"],
    ["backups", "list", "--json", "--dir"],
    ["backups", "verify", "some-name", "--all", "--json"],
    ["prune", "--keep-daily", "many", "--json"],
])
def test_a_usage_error_under_json_prints_the_json_error_document(run_cli, args: list[str]) -> None:
    result = run_cli(*args)
    assert result.exit_code == ExitCode.USAGE
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["exit_code"] == 3
    assert document["error"] and document["hint"].startswith("Try: railguard")


def test_without_json_a_usage_error_prints_no_json(run_cli) -> None:
    result = run_cli("status", "--no-such-option")
    assert result.exit_code == ExitCode.USAGE and result.stdout == ""


def test_config_naming_a_directory_says_it_is_a_directory(tmp_path: Path, run_cli) -> None:
    result = run_cli("--config", tmp_path, "status")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == (f"error: configuration file {tmp_path} is a directory; name the file in "
                                             f"it (such as {tmp_path / 'railguard.toml'})")


def test_railguard_config_naming_a_directory_says_it_is_a_directory(tmp_path: Path, run_cli) -> None:
    result = run_cli("status", env={"RAILGUARD_CONFIG": str(tmp_path)})
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith(f"error: configuration file {tmp_path} is a directory")
