"""The options that several commands take, each declared once: one name, one metavar, one help
text everywhere (tests/test_cli_options.py walks the command tree to keep it so).

The global options (``--config``, ``--app``, ``--json``, ``--quiet``, ``-v``) are in
:mod:`railguard.cli.root`; ``--json`` for a command that reports is
:func:`railguard.cli.output.json_option`. What an option means to one command (``--dest`` lists
the copies there for ``backups list``, fetches from there for ``restore``) is said in that
command's help, not in the option's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: What ``--check`` may name: PRAGMA integrity_check (the default) or the faster quick_check.
CHECKS = ["integrity", "quick"]


def database_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--db PATH``, passed as ``database``."""
    return click.option("--db", "database", metavar="PATH",
                        help="The app's database [apps.NAME.database].")(function)


def directory_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--dir DIR``, passed as ``directory``."""
    return click.option("--dir", "directory", metavar="DIR", help="Backup directory [backup.directory].")(function)


def dest_option(parameter: str = "dest") -> Decorator:
    """``--dest NAME``, passed as ``parameter``."""
    return click.option("--dest", parameter, metavar="NAME",
                        help="A destination of the app, by its name [apps.NAME.destinations.DEST] "
                             "(docs/destinations.md).")


def identity_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--identity FILE``, passed as ``identity`` (a :class:`~pathlib.Path`)."""
    return click.option("--identity", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
                        help="With --dest: the age identity file that decrypts an encrypted copy "
                             "[destinations.DEST.age_identity_file].")(function)


def check_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--check integrity|quick``, passed as ``check``."""
    return click.option("--check", type=click.Choice(CHECKS),
                        help="How to check a backup's database: integrity_check or quick_check "
                             "[backup.check].")(function)


def repository_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--repo PATH``, passed as ``repository``."""
    return click.option("--repo", "repository", metavar="PATH",
                        help="The app's git work tree [deploy.repository].")(function)


def dry_run_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--dry-run``, passed as ``dry_run``."""
    return click.option("--dry-run", is_flag=True,
                        help="Print what would be done and why; change nothing.")(function)


def for_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--for DURATION`` of a state that holds until undone (``backups keep``, ``monitor pause``),
    passed as ``for_text``."""
    return click.option("--for", "for_text", metavar="DURATION",
                        help="End it by itself this long from now: 30m, 12h, 7d, 2w.")(function)


def reason_option(default: str | None = None) -> Decorator:
    """``--reason TEXT``: why a state that holds until undone was set, shown where it is listed."""
    return click.option("--reason", metavar="TEXT", default=default, show_default=default is not None,
                        help="Why, in one line (shown where it is listed).")
