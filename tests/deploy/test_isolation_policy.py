"""resolve_isolation: what each configured mode turns into on this machine, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from railguard.config import Settings
from railguard.deploy.isolation import IsolationUnavailable, resolve_isolation
from railguard.deploy.suite import SuiteCommandMissing, run_suite
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


def test_a_test_command_the_sandbox_cannot_see_is_named_with_the_key_to_fix(tmp_path: Path) -> None:
    isolation = resolve_isolation("auto")
    if isolation.mode != "bwrap":
        print(f"skipped: bwrap does not run here ({isolation.describe()})")
        pytest.skip("bwrap does not run here")
    tools, tree = tmp_path / "tools", tmp_path / "run" / "tree"
    tools.mkdir()
    tree.mkdir(parents=True)
    tool = tools / "bun"
    tool.write_text("#!/bin/sh\necho 1 pass\n")
    tool.chmod(0o755)
    with pytest.raises(SuiteCommandMissing) as refused:
        run_suite(["bun"], cwd=tree, timeout=30, env={"PATH": str(tools)}, isolation=isolation, root=tree.parent)
    assert refused.value.message == f"the test command 'bun' is {tool}, outside what the sandbox sees"
    visible = resolve_isolation("auto", read_only=[tools])
    run = run_suite(["bun"], cwd=tree, timeout=30, env={"PATH": f"{tools}:/usr/bin:/bin"}, isolation=visible,
                    root=tree.parent)
    assert (run.passed, run.tail) == (True, ["1 pass"])
