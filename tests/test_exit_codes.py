"""The exit codes are an interface: scripts and schedulers depend on the numbers."""

from __future__ import annotations

import re
from pathlib import Path

from railguard.errors import ExitCode

DOCS = Path(__file__).resolve().parents[1] / "docs" / "exit-codes.md"


def test_exit_code_numbers_are_pinned():
    assert {code.name: code.value for code in ExitCode} == {
        "OK": 0, "WARNING": 1, "ERROR": 2, "USAGE": 3, "VERIFY_FAILED": 4, "BUSY": 5, "NOT_FOUND": 6,
        "CHECK_FAILED": 7, "SUPERSEDED": 8, "INTERRUPTED": 130,
    }


def test_the_docs_table_lists_every_exit_code():
    rows = re.findall(r"^\| +(\d+) \| ([a-z-]+) \|", DOCS.read_text(), flags=re.MULTILINE)
    assert [(int(number), name) for number, name in rows] == [
        (code.value, code.name.lower().replace("_", "-")) for code in ExitCode]


def test_help_lists_the_exit_codes(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for code in ExitCode:
        assert re.search(rf"^\s+{code.value}\s+{code.name.lower().replace('_', '-')}:", result.stdout, re.MULTILINE)


def test_an_unknown_command_is_a_usage_error(run_cli):
    result = run_cli("bakup")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: No such command 'bakup'")
