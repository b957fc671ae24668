"""docs/monitoring.md cannot drift: its configuration examples validate, its event list and
metric table match the code, and every command of the chapter has help and a section."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import pytest

from railguard.config import NotificationEvent, Settings
from railguard.metrics import RailguardCollector

DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
TEXT = DOCS.read_text()


@pytest.mark.parametrize("block", re.findall(r"```toml\n(.*?)```", TEXT, flags=re.DOTALL))
def test_every_configuration_example_is_valid(block: str) -> None:
    Settings.model_validate(tomllib.loads(block))


def test_the_documented_events_are_the_events_the_code_knows() -> None:
    paragraph = TEXT[TEXT.index("Events: "):]
    paragraph = paragraph[:paragraph.index(". An event goes")]
    assert set(re.findall(r"`([a-z_]+)`", paragraph)) == set(typing.get_args(NotificationEvent))


def test_the_metric_table_lists_every_metric_railguard_exposes(tmp_path: Path) -> None:
    exposed = set()
    for family in RailguardCollector(Settings(state_dir=tmp_path)).collect():
        exposed.add(family.name + ("_total" if family.type == "counter" else ""))
    documented = set(re.findall(r"^\| `(railguard_[a-z_]+)`", TEXT, flags=re.MULTILINE))
    documented |= set(re.findall(r"`(railguard_heartbeat_[a-z_]+)`", TEXT))
    assert exposed <= documented, exposed - documented


@pytest.mark.parametrize("command", [["notify", "test"], ["smoke"], ["monitor"], ["monitor", "list"],
                                     ["monitor", "pause"], ["monitor", "resume"], ["status"]])
def test_every_command_has_help_and_a_place_in_the_docs(run_cli, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(*command, "--help")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) > 3
    assert f"`railguard {' '.join(command)}`" in TEXT
