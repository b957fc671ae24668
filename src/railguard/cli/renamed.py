"""The old spellings of renamed commands and options: working for one more release, hidden
from the help, each printing a one-line note on stderr (docs/cli.md, "Renamed").

One word per idea: a destination is ``--dest NAME`` everywhere, a backup is the positional
``NAME`` everywhere, and a list of records is ``railguard NOUN list``. The tables below are
the whole story: docs/cli.md's table is checked against them (tests/test_cli_renamed.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

RELEASE = "the next release"

#: (group, old command name) -> new command name.
RENAMED_COMMANDS: dict[tuple[str, str], str] = {
    ("gate", "runs"): "list",
    ("monitor", "status"): "list",
}

#: (command path, old option) -> new spelling.
RENAMED_OPTIONS: dict[tuple[str, str], str] = {
    ("restore", "--from"): "--dest",
    ("drill", "--from"): "--dest",
    ("drill", "--backup"): "NAME (positional, as in restore)",
}


def note(old: str, new: str) -> None:
    click.echo(f"note: `{old}` is now `{new}`; the old spelling goes away in {RELEASE}", err=True)


def renamed_option(command_path: str, old: str, parameter: str, *, metavar: str = "NAME") -> Callable[..., Any]:
    """Accept ``old`` as a hidden, deprecated spelling of the option or argument whose callback
    parameter is ``parameter``: the new spelling wins when both are given."""
    new = RENAMED_OPTIONS[(command_path, old)]
    hidden_name = "renamed_" + old.lstrip("-").replace("-", "_")

    def announce(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            note(f"railguard {command_path} {old}", f"railguard {command_path} {new}")
        return value

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            old_value = kwargs.pop(hidden_name)
            if kwargs.get(parameter) is None and old_value is not None:
                kwargs[parameter] = old_value
            return function(*args, **kwargs)

        return click.option(old, hidden_name, metavar=metavar, hidden=True, callback=announce,
                            help=f"Renamed {new}.")(run)

    return decorate


def resolve_command(group: click.Group, ctx: click.Context, name: str) -> click.Command | None:
    """The group's command ``name``, or the one an old ``name`` was renamed to (with the note)."""
    new = RENAMED_COMMANDS.get((group.name or "", name))
    if new is None:
        return None
    note(f"railguard {group.name} {name}", f"railguard {group.name} {new}")
    return group.commands.get(new)
