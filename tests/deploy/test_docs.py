"""Every deploy command has help text and a section in the docs."""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(("command", "doc"), [
    ("deploy", "deploy.md"), ("rollback", "deploy.md"), ("deploys list", "deploy.md"), ("release", "deploy.md"),
    ("hook install", "hook.md"), ("hook uninstall", "hook.md"), ("hook run", "hook.md"),
])
def test_every_command_has_help_and_is_documented(run_cli, command, doc):
    result = run_cli(*command.split(), "--help")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) > 3
    assert f"railguard {command}" in (DOCS / doc).read_text() or f"`{command}`" in (DOCS / doc).read_text()


def test_every_deploy_setting_is_in_the_configuration_reference():
    from railguard.config import DeploySettings

    reference = (DOCS / "configuration.md").read_text()
    section = reference[reference.index("## `[apps.NAME.deploy]`"):]
    for key in DeploySettings.model_fields:
        assert f"| `{key}` |" in section, key
