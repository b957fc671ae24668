"""The renamed commands and options: the new spelling works, the old one still works for one
release with a one-line note on stderr, and docs/cli.md's "Renamed" table is the code's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from railguard.cli.renamed import RENAMED_COMMANDS, RENAMED_OPTIONS

ROOT = Path(__file__).resolve().parents[1]


def renamed_table() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text.split("## Renamed", 1)[1]
    return re.findall(r"^\| `railguard ([^`]+)` \| `railguard ([^`]+)` \|$", section, re.M)


def test_the_renamed_table_in_the_docs_is_the_codes():
    documented = renamed_table()
    commands = {(f"{group} {old}", f"{group} {new}") for (group, old), new in RENAMED_COMMANDS.items()}
    assert commands <= set(documented)
    options = {(path, old) for path, old in RENAMED_OPTIONS}
    assert {(old.split()[0], old.split()[1]) for old, _new in documented if old.split()[1].startswith("--")} == options
    assert len(documented) == len(RENAMED_COMMANDS) + len(RENAMED_OPTIONS)


def config(tmp_path: Path) -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\ndatabase = "{tmp_path / "tasks.db"}"\n'
                    f'url = "http://127.0.0.1:9"\n[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\n'
                    '[apps.tasks.drill]\ncommand = ["true"]\n')
    return path


@pytest.mark.parametrize("old, new", [(("gate", "runs"), ("gate", "list")),
                                      (("monitor", "status"), ("monitor", "list"))])
def test_an_old_command_name_works_with_a_note_and_is_hidden(run_cli, tmp_path: Path, old, new):
    now = run_cli(*new, "--config", config(tmp_path), "--json")
    before = run_cli(*old, "--config", config(tmp_path), "--json")
    assert now.exit_code == before.exit_code == 0, before.stderr
    assert before.stdout == now.stdout
    assert now.stderr == ""
    assert before.stderr == (f"note: `railguard {' '.join(old)}` is now `railguard {' '.join(new)}`; "
                             "the old spelling goes away in the next release\n")
    group_help = run_cli(old[0], "--help").stdout
    assert re.search(rf"^  {new[1]}\b", group_help, re.M)
    assert not re.search(rf"^  {old[1]}\b", group_help, re.M)


@pytest.mark.parametrize("command, old, new", [("restore", "--from", "--dest"), ("drill", "--from", "--dest")])
def test_an_old_destination_option_means_the_new_one(run_cli, tmp_path: Path, command, old, new):
    now = run_cli(command, new, "nowhere", "--config", config(tmp_path))
    before = run_cli(command, old, "nowhere", "--config", config(tmp_path))
    assert now.exit_code == before.exit_code
    assert now.exit_code not in (0, 2), now.stderr
    assert "nowhere" in now.stderr
    assert before.stderr == (f"note: `railguard {command} {old}` is now `railguard {command} {new}`; "
                             f"the old spelling goes away in the next release\n") + now.stderr
    assert old not in run_cli(command, "--help").stdout


def test_the_new_spelling_wins_when_both_are_given(run_cli, tmp_path: Path):
    both = run_cli("restore", "--dest", "chosen", "--from", "ignored", "--config", config(tmp_path))
    alone = run_cli("restore", "--dest", "chosen", "--config", config(tmp_path))
    assert both.exit_code == alone.exit_code
    assert both.stderr.splitlines()[1:] == alone.stderr.splitlines()
    assert "ignored" not in alone.stderr.split("\n", 1)[-1]


def test_drill_takes_the_backup_as_its_argument_and_backup_still_works(run_cli, tmp_path: Path):
    now = run_cli("drill", "tasks-20990101-0000", "--config", config(tmp_path))
    before = run_cli("drill", "--backup", "tasks-20990101-0000", "--config", config(tmp_path))
    assert now.exit_code == before.exit_code == 6, now.stderr
    assert "tasks-20990101-0000" in now.stderr
    assert before.stderr == ("note: `railguard drill --backup` is now `railguard drill NAME (positional, as in "
                             "restore)`; the old spelling goes away in the next release\n") + now.stderr


def test_a_destinations_list_says_verified_as_the_local_list_does(run_cli, tmp_path: Path, tasks_db: Path):
    nas = tmp_path / "nas"
    nas.mkdir()
    path = tmp_path / "dest.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\ndatabase = "{tasks_db}"\n'
                    f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\nprune = false\n'
                    f'[apps.tasks.destinations.nas]\nurl = "file://{nas}"\n')
    assert run_cli("backup", "--config", path).exit_code == 0
    assert run_cli("replicate", "--config", path).exit_code == 0
    local = run_cli("backups", "list", "--config", path).stdout.splitlines()
    remote = run_cli("backups", "list", "--dest", "nas", "--config", path).stdout.splitlines()
    header = next(line for line in remote if line.lstrip().startswith("name"))
    assert header.replace("┃", " ").split() == ["name", "time", "(UTC)", "size", "kind", "encrypted", "verified", "age"]
    assert "verified" in next(line for line in local if line.lstrip().startswith("name")).replace("┃", " ").split()
