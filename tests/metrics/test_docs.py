"""The metrics doc's exposition example says each family's help and type as railguard exposes them."""

from __future__ import annotations

import re
from pathlib import Path

from railguard.config import Settings
from railguard.metrics import RailguardCollector

TEXT = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text()


def test_the_documented_help_and_type_lines_are_the_exposed_ones(tmp_path: Path) -> None:
    exposed = {family.name: family for family in RailguardCollector(Settings(state_dir=tmp_path)).collect()}
    helps = dict(re.findall(r"^# HELP (railguard_[a-z_]+) (.+)$", TEXT, flags=re.MULTILINE))
    types = dict(re.findall(r"^# TYPE (railguard_[a-z_]+) ([a-z]+)$", TEXT, flags=re.MULTILINE))
    assert "railguard_recovery_point_seconds" in helps and helps.keys() == types.keys()
    for name, documentation in helps.items():
        assert (exposed[name].documentation, exposed[name].type) == (documentation, types[name])
