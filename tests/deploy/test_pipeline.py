"""deploy/pipeline.py: the one way pushed code is tested (hook, gate check, gate worker).
Real tars from ``git archive`` of a real repository, the suite as a real process."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from railguard.deploy.pipeline import TreeUnusable, refuse_secrets_in_pass_env, suite_environment, test_tree
from railguard.errors import ConfigError, ExitCode

COMMIT = "7" * 40


def test_the_test_environment_keeps_only_what_a_suite_needs_and_what_config_names(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin", "RAILGUARD_GATE_SECRET": "x" * 10, "CAPROVER_APP_TOKEN": "y" * 10,
           "BUN_INSTALL": "/opt/bun", "GIT_DIR": "/srv/repo.git"}
    clean = suite_environment(env, ["BUN_INSTALL"], home=tmp_path, commit=COMMIT)
    assert clean == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
                     "CI": "true", "RAILGUARD_COMMIT": COMMIT, "BUN_INSTALL": "/opt/bun"}


def test_a_git_variable_never_reaches_the_suite_even_when_the_config_names_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin", "GIT_DIR": "/srv/repo.git", "GIT_QUARANTINE_PATH": "/srv/repo.git/objects/q"}
    assert "GIT_DIR" not in suite_environment(env, ["GIT_DIR", "GIT_QUARANTINE_PATH"], home=tmp_path, commit=COMMIT)


def test_pass_env_naming_a_secret_or_its_file_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as refused:
        refuse_secrets_in_pass_env(["BUN_INSTALL", "CAPROVER_APP_TOKEN_FILE"], ["CAPROVER_APP_TOKEN", None],
                                   "apps.tasks.deploy.test_pass_env")
    assert refused.value.exit_code == ExitCode.USAGE
    assert refused.value.message == ("apps.tasks.deploy.test_pass_env would hand the secret CAPROVER_APP_TOKEN_FILE "
                                     "to the test suite")
    refuse_secrets_in_pass_env(["BUN_INSTALL"], ["CAPROVER_APP_TOKEN"], "x")  # nothing to refuse


def _archive(tmp_path: Path, files: dict[str, str]) -> bytes:
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "--quiet", str(work)], check=True)
    for name, text in files.items():
        (work / name).write_text(text)
    subprocess.run(["git", "add", "--all"], cwd=work, check=True)
    subprocess.run(["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.test", "-c", "commit.gpgsign=false",
                    "commit", "--quiet", "-m", "one"], cwd=work, check=True)
    return subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=work, check=True,
                          capture_output=True).stdout


def test_the_tree_is_tested_in_a_private_directory_that_is_gone_afterwards(tmp_path: Path) -> None:
    tar = _archive(tmp_path, {"run-tests.sh": 'pwd\nls\necho "home=$HOME secret=${CAPROVER_APP_TOKEN:-none}"\n'})
    lines: list[str] = []
    run = test_tree(tar, ["sh", "run-tests.sh"], commit=COMMIT,
                    env={"PATH": "/usr/bin:/bin", "CAPROVER_APP_TOKEN": "t0ken"}, timeout=30, on_line=lines.append)
    assert run.passed, run.tail
    tree = Path(lines[0])
    assert tree.name == "tree" and tree.parent.name.startswith("railguard-test-") and not tree.parent.exists()
    assert lines[1] == "run-tests.sh"
    assert lines[2] == f"home={tree.parent / 'home'} secret=none"


def test_a_body_that_is_no_tar_is_an_unusable_tree_and_leaves_nothing_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(TreeUnusable) as refused:
        test_tree(b"not a tar at all" * 64, ["true"], commit=COMMIT, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert refused.value.message.startswith(f"cannot unpack the pushed commit {COMMIT[:12]}: ")
    assert list(scratch.iterdir()) == []
