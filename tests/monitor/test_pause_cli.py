"""``railguard monitor pause|resume``: the commands in-process, the monitor command itself run
against a real target on 127.0.0.1 and a real apprise receiver, the exact messages asserted."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from local_http import JsonReceiver, SwitchableTarget


def write_config(tmp_path: Path, target: SwitchableTarget) -> Path:
    config = tmp_path / "railguard.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\nurl = "{target.base}"\n'
                      '[monitor]\ninterval = "0.2s"\ntimeout = "2s"\n')
    return config


def test_a_paused_app_is_checked_but_not_alerted_and_monitor_list_says_why(
        run_cli, tmp_path: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, target)
    env = {"RAILGUARD_NOTIFY_URLS": receiver.url}
    assert run_cli("--config", config, "monitor", "--rounds", "1", env=env).exit_code == 0
    paused = run_cli("--config", config, "monitor", "pause", "tasks", "--reason", "moving the disk")
    assert (paused.exit_code, paused.stdout) == (0, "tasks: paused until resumed: moving the disk "
                                                    "(railguard monitor resume tasks)\n")
    target.up = False
    assert run_cli("--config", config, "monitor", "--rounds", "4", env=env).exit_code == 0
    assert receiver.messages == []
    table = run_cli("--config", config, "monitor", "list")
    assert table.exit_code == 7
    assert "(paused until resumed: moving the disk)" in table.stdout
    row, = json.loads(run_cli("--config", config, "monitor", "list", "--json").stdout)["targets"]
    assert row["status"] == "down"
    assert (row["paused"]["name"], row["paused"]["until"], row["paused"]["reason"]) == ("tasks", None,
                                                                                        "moving the disk")
    resumed = run_cli("--config", config, "monitor", "resume", "tasks", "--json")
    assert resumed.exit_code == 0
    assert json.loads(resumed.stdout)["was_paused"] is True
    assert run_cli("--config", config, "monitor", "--rounds", "1", env=env).exit_code == 0
    assert receiver.titles() == ["tasks is DOWN"]  # still down at the resume: announced at the next check
    again = run_cli("--config", config, "monitor", "resume", "tasks")
    assert (again.exit_code, again.stdout) == (0, "tasks: was not paused\n")


def test_a_pause_for_a_time_says_until_when(run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, target)
    result = run_cli("--config", config, "monitor", "pause", "tasks", "--for", "90m", "--json")
    assert result.exit_code == 0
    paused = json.loads(result.stdout)["paused"]
    assert (datetime.fromisoformat(paused["until"]) - datetime.fromisoformat(paused["since"])).total_seconds() == 5400


def test_pausing_a_name_the_monitor_does_not_know_is_refused(run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, target)
    result = run_cli("--config", config, "monitor", "pause", "taks")
    assert result.exit_code == 6
    assert result.stderr == "error: the monitor has no app or target named 'taks'\nhint: Name one of: tasks\n"
    assert not (tmp_path / "state" / "monitor.sqlite3").exists()


def test_a_bad_pause_length_names_the_flag(run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, target)
    result = run_cli("--config", config, "monitor", "pause", "tasks", "--for", "a while")
    assert result.exit_code == 3
    assert result.stderr == ("error: --for: expected a duration such as '30s', '5m', '1h30m' or '2d', got 'a while'\n"
                             "hint: Try: railguard monitor pause tasks --for 1h\n")
    zero = run_cli("--config", config, "monitor", "pause", "tasks", "--for", "0s")
    assert zero.exit_code == 3
    assert zero.stderr.startswith("error: a pause must last longer than 0s, not 0s\n")
    assert not (tmp_path / "state" / "monitor.sqlite3").exists()
