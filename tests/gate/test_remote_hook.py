"""`railguard hook install --remote URL`: a POSIX sh pre-receive hook (git archive + curl) that asks
the gate to test each push, exercised through a real `git push`."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from deploy.gitrepos import TEST_SCRIPT
from gate.conftest import CHECK_SECRET, SECRETS, Remote, git
from git_user import GitUser, commit, needs_root, owned_repository
from local_http import free_port
from railguard.deploy.hook.remote import remote_hook_script

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the sh hook needs curl (apt-get install curl)")


@pytest.fixture
def hooked(start_gate, remote: Remote, run_cli, tmp_path: Path):  # type: ignore[no-untyped-def]
    gate = start_gate()
    result = run_cli("--config", tmp_path / "railguard.toml", "hook", "install",
                     remote.origin, "--remote", gate.url, env={"RAILGUARD_GATE_CHECK_SECRET": CHECK_SECRET})
    assert result.exit_code == 0, result.stderr
    return gate, result


def _remote_lines(push: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.removeprefix("remote: ").rstrip() for line in push.stderr.splitlines() if line.startswith("remote:")]


def test_the_sh_hook_rejects_a_push_whose_tests_fail(hooked, remote: Remote) -> None:
    gate, install = hooked
    head_before = git(remote.origin, "rev-parse", "main")
    remote.commit("break the tasks count", {"FAIL": "1\n"})

    push = remote.push()

    lines = _remote_lines(push)
    assert push.returncode != 0
    assert "railguard:   | tasks.test.ts: expected 3 tasks, got 2" in lines
    assert any(line.startswith("railguard: push rejected: refs/heads/main: `sh run-tests.sh` failed") for line in lines)
    assert git(remote.origin, "rev-parse", "main") == head_before
    assert f"installed {remote.origin / 'hooks' / 'pre-receive'}" in install.stdout
    [check] = gate.runs()
    assert (check["source"], check["status"]) == ("check", "failed")


def test_the_sh_hook_lets_a_passing_push_land_and_other_branches_through_untested(hooked, remote: Remote) -> None:
    gate, _ = hooked
    sha = remote.commit("a good change")

    push = remote.push()
    side = subprocess.run(["git", "push", "origin", "HEAD:refs/heads/experiment"], cwd=remote.work,
                          capture_output=True, text=True)

    assert push.returncode == 0, push.stderr
    assert "railguard: passed: `sh run-tests.sh` passed" in "\n".join(_remote_lines(push))
    assert git(remote.origin, "rev-parse", "main") == sha
    assert side.returncode == 0 and "not a protected branch" in side.stderr
    assert [run["status"] for run in gate.runs()] == ["passed"]
    hook_text = (remote.origin / "hooks" / "pre-receive").read_text()
    assert not [secret for secret in SECRETS if secret in hook_text + push.stderr + side.stderr]


def test_the_sh_hook_rejects_when_the_secret_is_wrong_or_the_gate_is_down(hooked, remote: Remote) -> None:
    gate, _ = hooked
    secret_file = remote.origin / "hooks" / "railguard-gate.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret_file.write_text("not-the-shared-secret\n")
    remote.commit("fine, but unverified")

    wrong = remote.push()
    hook = remote.origin / "hooks" / "pre-receive"
    hook.write_text(hook.read_text().replace(gate.url, f"http://127.0.0.1:{free_port()}"))
    down = remote.push()

    assert wrong.returncode != 0 and "the gate refused the hook's credentials" in wrong.stderr
    assert down.returncode != 0 and "answered HTTP 000; push rejected" in down.stderr
    assert gate.runs() == []


def test_the_hook_script_quotes_what_it_bakes_in_and_is_valid_posix_sh(tmp_path: Path) -> None:
    script = remote_hook_script(url="http://127.0.0.1:1/x'; touch /tmp/pwned; '", app="tasks $(id)",
                                secret_file=tmp_path / "it's a secret", chain=False)
    path = tmp_path / "pre-receive"
    path.write_text(script)

    parsed = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)

    assert parsed.returncode == 0, parsed.stderr
    assert "url='http://127.0.0.1:1/x'\"'\"'; touch /tmp/pwned; '\"'\"'/api/v1/check'" in script
    assert "app='tasks $(id)'" in script


def test_the_sh_hook_rejects_deleting_the_deployed_branch(hooked, remote: Remote) -> None:
    gate, _ = hooked
    deleted = subprocess.run(["git", "push", "origin", ":main"], cwd=remote.work, capture_output=True, text=True)

    assert deleted.returncode != 0
    assert "railguard: refs/heads/main: deleting a protected branch is not allowed" in _remote_lines(deleted)
    assert git(remote.origin, "rev-parse", "main") == remote.sha()
    assert gate.runs() == []


@needs_root
def test_installed_by_root_the_sh_hook_reads_its_secret_as_the_git_user_at_the_containers_path(
        start_gate, run_cli, git_user: GitUser, shared_dir: Path, tmp_path: Path) -> None:
    gate = start_gate()
    host = shared_dir / "host" / "repositories"
    bare, work = owned_repository(git_user, host, files={"run-tests.sh": TEST_SCRIPT})
    install = run_cli("--config", tmp_path / "railguard.toml", "hook", "install", bare, "--remote", gate.url,
                      env={"RAILGUARD_GATE_CHECK_SECRET": CHECK_SECRET})
    assert install.exit_code == 0, install.stderr
    secret = os.stat(bare / "hooks" / "railguard-gate.secret")
    hook = os.stat(bare / "hooks" / "pre-receive")
    assert (secret.st_uid, stat.S_IMODE(secret.st_mode)) == (git_user.uid, 0o600)
    assert (hook.st_uid, stat.S_IMODE(hook.st_mode)) == (git_user.uid, 0o755)
    # Forgejo's container mounts the same repositories at another path (/data/git/repositories).
    container = shared_dir / "data" / "git" / "repositories"
    container.parent.mkdir(parents=True)
    os.rename(host, container)
    work = container / "work"
    git_user.git(work, "remote", "set-url", "origin", str(container / "app.git"))
    sha = commit(git_user, work, "a good change", {})

    push = git_user.run("git", "push", "origin", "main", cwd=work)

    assert push.returncode == 0, push.stderr
    assert "railguard: passed: `sh run-tests.sh` passed" in push.stderr
    assert git_user.git(container / "app.git", "rev-parse", "main") == sha
    assert [run["status"] for run in gate.runs()] == ["passed"]
