"""Every command's help ends with an ``Examples:`` block, and every example parses: click's own
parser on the example's words, down to the command, without running it."""

from __future__ import annotations

import shlex

import click
import pytest

from railguard.cli import output
from railguard.cli.examples import EXAMPLES
from railguard.cli.root import cli
from test_global_options import every_command


def parse_without_running(words: list[str]) -> click.Command:
    """What ``railguard WORDS`` would run, after click parsed every group's and the command's
    options and arguments (a bad option, a missing argument or a bad choice raises)."""
    modes = output.start_command()  # --json, --quiet and -v callbacks set these: give them back
    try:
        ctx = cli.make_context("railguard", list(words))
        command: click.Command = cli
        while isinstance(command, click.Group):
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                break
            name, sub, remaining = command.resolve_command(ctx, rest)
            assert sub is not None, words
            ctx = sub.make_context(name, remaining, parent=ctx)
            command = sub
        return command
    finally:
        output.end_command(modes)


def example_words(line: str) -> list[str]:
    # "hook run < ref-lines.txt": the redirection is the shell's, not railguard's.
    return shlex.split(line.split(" < ")[0])


def test_every_command_has_examples_and_its_help_ends_with_them(run_cli):
    for path, _command in every_command():
        name = " ".join(path)
        assert EXAMPLES.get(name), f"railguard {name} has no examples"
        result = run_cli(*path, "--help")
        assert result.exit_code == 0, result.stderr
        last_block = result.stdout.rstrip().split("\n\n")[-1]
        assert last_block.startswith("Examples:\n"), f"railguard {name} --help does not end with its examples"
        for line, _what in EXAMPLES[name]:
            assert f"railguard {line}" in last_block


def test_the_root_help_ends_with_examples(run_cli):
    result = run_cli("--help")
    assert result.stdout.rstrip().split("\n\n")[-1].startswith("Examples:\n")


@pytest.mark.parametrize("path, line", [(path, line) for path, lines in EXAMPLES.items() for line, _ in lines
                                        if not line.startswith("probe ")])
def test_every_example_parses_and_names_its_own_command(path: str, line: str):
    words = example_words(line)
    parse_without_running(words)
    # An example in the help of "backups" runs "backups" or one of its commands (the root's: any).
    assert words[:len(path.split())] == path.split(), (path, line)


def test_the_parser_of_this_test_rejects_what_click_rejects():
    with pytest.raises(click.NoSuchOption):
        parse_without_running(["backups", "list", "--no-such-option"])
    with pytest.raises(click.BadParameter):
        parse_without_running(["backup", "--compression", "lz4"])
    with pytest.raises(click.MissingParameter):
        parse_without_running(["hook", "install"])


def test_the_probe_examples_parse_with_the_probes_own_parser():
    from railguard import probe

    parsed = [probe.parse_args(example_words(line)[1:]) for line, _what in EXAMPLES["probe"]]
    assert parsed == [("http://127.0.0.1:3000/health", parsed[0][1], 200),
                      ("http://127.0.0.1:3000/ready", 3.0, 204)]
