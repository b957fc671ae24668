"""The Python hook as on a real Forgejo host: the repository belongs to the git user, the admin
installs as root, and git runs the hook as the git user when that user pushes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from deploy.gitrepos import TEST_SCRIPT
from git_user import GitUser, commit, needs_root, owned_repository
from railguard.errors import ExitCode
from hook.test_install import FORGEJO_DISPATCHER

pytestmark = needs_root
SUITE = ["sh", "-c", 'echo "suite ran as uid $(id -u)"; exec sh run-tests.sh']


def _forgejo_layout(user: GitUser, bare: Path) -> None:
    hooks = bare / "hooks"
    (hooks / "pre-receive.d").mkdir()
    (hooks / "pre-receive").write_text(FORGEJO_DISPATCHER)
    (hooks / "pre-receive").chmod(0o755)
    user.own(hooks)


def _config(directory: Path) -> Path:
    path = directory / "railguard.toml"
    path.write_text(f'state_dir = "{directory / "state"}"\n\n[apps.tasks]\n\n[apps.tasks.deploy]\n'
                    f"test_command = {json.dumps(SUITE)}\n"
                    'test_timeout = "60s"\nprotected_branches = ["main"]\n')
    path.chmod(0o644)
    return path


def test_root_installs_into_the_git_users_repository_and_the_hook_runs_as_the_git_user(
        run_cli, git_user: GitUser, git_user_python: str, shared_dir: Path) -> None:
    bare, work = owned_repository(git_user, shared_dir / "repositories", files={"run-tests.sh": TEST_SCRIPT})
    _forgejo_layout(git_user, bare)
    config = _config(shared_dir)

    installed = run_cli("--config", config, "hook", "install", bare, "--python", git_user_python)

    assert installed.exit_code == 0, installed.stderr  # not "is not a git repository" (dubious ownership)
    hook = bare / "hooks" / "pre-receive.d" / "railguard"
    info = os.stat(hook)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (git_user.uid, git_user.gid, 0o755)
    assert [p.name for p in hook.parent.iterdir()] == ["railguard"]  # no temporary file left behind

    head = git_user.git(bare, "rev-parse", "main")
    commit(git_user, work, "breaks", {"FAIL": "1\n"})
    rejected = git_user.run("git", "push", "origin", "main", cwd=work)
    commit(git_user, work, "fixed", {"FAIL": None})
    accepted = git_user.run("git", "push", "origin", "main", cwd=work)

    assert rejected.returncode != 0, rejected.stderr
    assert f"remote: railguard:   | suite ran as uid {git_user.uid}" in rejected.stderr, rejected.stderr.splitlines()
    assert "remote: railguard: push rejected: refs/heads/main" in rejected.stderr
    assert accepted.returncode == 0, accepted.stderr
    assert git_user.git(bare, "rev-parse", "main") != head
    assert "railguard: passed: refs/heads/main" in accepted.stderr


def test_root_refuses_to_install_a_hook_the_git_user_could_not_run(run_cli, git_user: GitUser,
                                                                   git_user_python: str, shared_dir: Path) -> None:
    bare, _ = owned_repository(git_user, shared_dir / "repositories", files={"run-tests.sh": TEST_SCRIPT})
    config = _config(shared_dir)
    config.chmod(0o600)  # root's own file: the git user could not read it when a push runs the hook

    refused = run_cli("--config", config, "hook", "install", bare, "--python", git_user_python)

    assert refused.exit_code == ExitCode.USAGE
    assert refused.stderr.splitlines()[0] == (f"error: the repository's owner (uid {git_user.uid}) cannot read the "
                                              f"configuration {config}, and git runs the hook as that user")
    assert not (bare / "hooks" / "pre-receive").exists()
