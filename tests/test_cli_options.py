"""Options that several commands take are declared once (railguard/cli/options.py and the global
options of railguard/cli/root.py): walked over click's command tree, each has one help text, one
metavar and one type everywhere, as in sqlite-utils."""

from __future__ import annotations

from collections import defaultdict

import click

from railguard.cli.root import cli
from test_global_options import every_command

#: Declared once and used by several commands: the same everywhere.
SHARED = {"--db", "--dir", "--dest", "--identity", "--check", "--repo", "--dry-run",
          "--config", "--app", "--json", "--quiet", "--verbose"}

#: One word, different ideas per command: each says its own meaning.
DIFFERENT_IDEAS = {
    "--all": "replicate: also older backups; backups verify: every backup",
    "--force": "init: overwrite files; restore: replace a database in use",
    "--port": "gate serve: where to listen; init: the app's default PORT",
    "--prune": "backup: local retention afterwards; replicate: each destination's retention",
    "--to": "rollback: a version or commit; restore: a target file",
}


def declarations() -> dict[str, dict[tuple[str | None, str | None, str], list[str]]]:
    """Each long option name -> each (help, metavar, type) it is declared with -> where."""
    found: dict[str, dict[tuple[str | None, str | None, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    commands = [(["(root)"], cli), *every_command()]
    for path, command in commands:
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            for name in param.opts:
                if name.startswith("--"):
                    kind = type(param.type).__name__ + repr(getattr(param.type, "choices", ""))
                    found[name][(param.help, param.metavar, kind)].append(" ".join(path))
    return found


def test_each_shared_option_has_one_help_text_metavar_and_type_on_every_command():
    found = declarations()
    for name in SHARED:
        assert name in found, f"{name} is declared nowhere"
        assert len(found[name]) == 1, f"{name} is declared differently: {dict(found[name])}"


def test_the_shared_options_are_used_by_several_commands():
    found = declarations()
    for name in SHARED:
        (where,) = found[name].values()
        assert len(where) >= 2, f"{name} is only on {where}: not a shared option"


def test_an_option_repeated_with_another_meaning_is_one_of_the_known_few():
    repeated = {name for name, ways in declarations().items() if len(ways) > 1}
    assert repeated == set(DIFFERENT_IDEAS), (
        "an option name declared in several ways: declare it once in railguard/cli/options.py, or "
        f"say here why it means another thing: {sorted(repeated ^ set(DIFFERENT_IDEAS))}")
