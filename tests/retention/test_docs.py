"""The worked example in docs/retention.md is run, not just read: it cannot drift."""

from __future__ import annotations

import re
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from retention.helpers import write_backup_files

from railguard.cli.context import Context

DOC = Path(__file__).resolve().parents[2] / "docs" / "retention.md"
EXAMPLE = re.compile(r"<!-- worked-example -->\n```console\n\$ (?P<command>[^\n]+)\n(?P<output>.*?)```", re.DOTALL)
DECISION = re.compile(r"^(?:keep|remove|leave)\s+(?P<name>\S+)\s+(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d)\s")


def test_the_worked_example_prints_exactly_what_the_docs_show(tmp_path: Path, run_cli,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    match = EXAMPLE.search(DOC.read_text(encoding="utf-8"))
    assert match, "docs/retention.md lost its worked example"
    expected = match["output"]
    directory = tmp_path / "backups"
    times = []
    for line in expected.splitlines():
        decision = DECISION.match(line)
        if decision:
            moment = datetime.strptime(decision["time"], "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
            assert write_backup_files(directory, moment) == decision["name"]
            times.append(moment)
    assert len(times) == 21
    config = tmp_path / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{tmp_path / "tasks.db"}"\n'
                      f'[apps.tasks.backup]\ndirectory = "{directory}"\n', encoding="utf-8")
    monkeypatch.setattr(Context, "now", staticmethod(lambda: max(times) + timedelta(minutes=30)))

    program, *args = shlex.split(match["command"])
    assert program == "railguard"
    result = run_cli("--config", config, *args)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == expected
