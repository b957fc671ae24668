"""The command line as a whole: every command is reachable, documented and has help."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import click

from railguard.cli.root import COMMAND_MODULES, cli

ROOT = Path(__file__).resolve().parents[1]


def all_commands() -> dict[str, click.Command]:
    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"railguard.cli.{module}")
    return dict(cli.commands)


def test_the_lazy_command_table_names_exactly_the_registered_commands():
    assert set(all_commands()) == set(COMMAND_MODULES)


def test_every_command_and_subcommand_has_help_text():
    def walk(command: click.Command, path: str):
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")

    for name, command in all_commands().items():
        for path, each in walk(command, name):
            assert (each.help or "").strip(), f"railguard {path} has no help text"


def test_every_command_is_documented():
    docs = "\n".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    for name in all_commands():
        assert re.search(rf"railguard {name}\b", docs), f"railguard {name} appears in no doc"


def test_help_runs_for_every_command(run_cli):
    for name in all_commands():
        result = run_cli(name, "--help")
        assert result.exit_code == 0, (name, result.stderr)
        # probe keeps its own standard-library parser (it must start fast): "usage: probe URL ..."
        first = result.stdout.splitlines()[0]
        assert first.startswith((f"Usage: railguard {name}", f"usage: {name} ")), first
