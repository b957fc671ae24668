"""resolve_isolation: what each configured mode turns into on this machine, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from railguard.config import Settings
from railguard.deploy.isolation import IsolationUnavailable, resolve_isolation
from railguard.errors import ExitCode


def test_an_unknown_mode_is_refused_by_the_configuration_and_by_the_resolver() -> None:
    with pytest.raises(ValueError, match="gate.isolation"):
        Settings.model_validate({"gate": {"isolation": "docker:alpine"}})
    with pytest.raises(IsolationUnavailable) as refused:
        resolve_isolation("docker:alpine")
    assert (refused.value.message, refused.value.hint) == (
        "gate.isolation = 'docker:alpine' is not an isolation mode", 'Use "auto", "bwrap", "user:NAME" or "none"')
    assert refused.value.exit_code == ExitCode.USAGE


def test_a_read_only_path_that_holds_a_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsolationUnavailable) as refused:
        resolve_isolation("auto", private=[tmp_path / "state"], read_only=[tmp_path])
    assert refused.value.message == (f"gate.isolation: the read-only path {tmp_path} holds {tmp_path / 'state'}, "
                                     "which the tests must not see")


def test_bwrap_asked_for_by_name_where_it_is_missing_stops_the_service(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no bwrap on this PATH
    with pytest.raises(IsolationUnavailable) as refused:
        resolve_isolation("bwrap", where="apps.tasks.deploy.test_isolation")
    assert refused.value.message == ('apps.tasks.deploy.test_isolation = "bwrap" but bwrap is not installed '
                                     "(Debian: apt-get install bubblewrap)")


def test_none_says_why_wherever_it_is_shown() -> None:
    isolation = resolve_isolation("none")
    assert not isolation.isolated
    assert isolation.describe() == ('NOT ISOLATED: gate.isolation = "none": the test suite runs as railguard\'s '
                                    "own user and could read railguard's secrets")
