"""``railguard hook install|uninstall``: Forgejo's pre-receive.d layout, plain git, chaining."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from railguard.deploy.hook.install import CHAINED_SUFFIX, MARKER
from railguard.errors import ExitCode

# What Forgejo generates as hooks/pre-receive: read stdin once, run every hook in pre-receive.d.
FORGEJO_DISPATCHER = """#!/usr/bin/env bash
data=$(cat)
exitcodes=""
hookname=$(basename $0)
GIT_DIR=${GIT_DIR:-$(dirname $0)/..}
for hook in ${GIT_DIR}/hooks/${hookname}.d/*; do
  test -x "${hook}" && test -f "${hook}" || continue
  echo "${data}" | "${hook}"
  exitcodes="${exitcodes} $?"
done
for i in ${exitcodes}; do
  [ ${i} -eq 0 ] || exit ${i}
done
"""


def forgejo_layout(bare):
    hooks = bare / "hooks"
    (hooks / "pre-receive.d").mkdir()
    (hooks / "pre-receive").write_text(FORGEJO_DISPATCHER)
    (hooks / "pre-receive").chmod(0o755)
    gitea = hooks / "pre-receive.d" / "gitea"
    gitea.write_text("#!/bin/sh\necho 'forgejo hook ran'\n")
    gitea.chmod(0o755)


def test_install_uses_forgejos_pre_receive_d_and_bakes_in_absolute_paths(server, run_cli):
    forgejo_layout(server.bare)
    result = run_cli("--config", server.config, "hook", "install", server.bare)
    assert result.exit_code == 0, result.stderr
    installed = server.bare / "hooks" / "pre-receive.d" / "railguard"
    assert result.stdout.splitlines()[0] == f"installed {installed}"
    assert os.access(installed, os.X_OK)
    text = installed.read_text()
    assert MARKER in text
    assert (f"exec {shlex.quote(sys.executable)} -m railguard.deploy.hook.main "
            f"--config {shlex.quote(str(server.config.resolve()))} --app tasks") in text
    assert (server.bare / "hooks" / "pre-receive").read_text() == FORGEJO_DISPATCHER


def test_under_forgejos_dispatcher_a_failing_push_is_rejected_and_forgejos_hook_still_runs(server, run_cli):
    forgejo_layout(server.bare)
    assert run_cli("--config", server.config, "hook", "install", server.bare).exit_code == 0
    before = server.head("main")
    server.commit("breaks", {"FAIL": "1\n"})
    push = server.push("main")
    assert push.returncode != 0 and server.head("main") == before
    assert "remote: forgejo hook ran" in push.output and "push rejected: refs/heads/main" in push.output
    subprocess.run(["git", "rm", "--quiet", "FAIL"], cwd=server.work, check=True)
    fixed = server.commit("fixed")
    assert server.push("main").returncode == 0 and server.head("main") == fixed


def test_an_existing_plain_hook_is_kept_and_still_runs_first(server, run_cli):
    hook = server.bare / "hooks" / "pre-receive"
    original = "#!/bin/sh\nwhile read old new ref; do echo \"audit: $ref\"; done\n"
    hook.write_text(original)
    hook.chmod(0o755)
    result = run_cli("--config", server.config, "hook", "install", server.bare)
    assert result.exit_code == 0, result.stderr
    chained = server.bare / "hooks" / f"pre-receive{CHAINED_SUFFIX}"
    assert chained.read_text() == original
    server.commit("works", {"index.ts": "v2\n"})
    push = server.push("main")
    assert push.returncode == 0, push.output
    assert "remote: audit: refs/heads/main" in push.output and "passed: refs/heads/main" in push.output

    removed = run_cli("hook", "uninstall", server.bare)
    assert removed.exit_code == 0, removed.stderr
    assert hook.read_text() == original and not chained.exists()


def test_a_rejecting_chained_hook_still_rejects_the_push(server, run_cli):
    hook = server.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen by the old hook'\nexit 1\n")
    hook.chmod(0o755)
    assert run_cli("--config", server.config, "hook", "install", server.bare).exit_code == 0
    server.commit("works", {"index.ts": "v2\n"})
    push = server.push("main")
    assert push.returncode != 0 and "frozen by the old hook" in push.output


def test_installing_twice_is_refused_with_a_hint(server, run_cli):
    assert run_cli("--config", server.config, "hook", "install", server.bare).exit_code == 0
    again = run_cli("--config", server.config, "hook", "install", server.bare)
    assert again.exit_code == ExitCode.USAGE
    assert again.stderr.splitlines() == [
        f"error: railguard's hook is already installed in {server.bare / 'hooks' / 'pre-receive'}",
        f"hint: railguard hook uninstall {server.bare}, then install again"]


def test_installing_twice_in_forgejo_layout_is_refused(server, run_cli):
    forgejo_layout(server.bare)
    assert run_cli("--config", server.config, "hook", "install", server.bare).exit_code == 0
    again = run_cli("--config", server.config, "hook", "install", server.bare)
    assert again.exit_code == ExitCode.USAGE and "already exists" in again.stderr


def test_uninstall_removes_only_railguards_hook(server, run_cli):
    forgejo_layout(server.bare)
    assert run_cli("--config", server.config, "hook", "install", server.bare).exit_code == 0
    assert run_cli("hook", "uninstall", server.bare).exit_code == 0
    assert sorted(p.name for p in (server.bare / "hooks" / "pre-receive.d").iterdir()) == ["gitea"]
    again = run_cli("hook", "uninstall", server.bare)
    assert again.exit_code == ExitCode.NOT_FOUND
    assert again.stderr.splitlines()[0] == f"error: railguard's hook is not installed in {server.bare}"


def test_install_into_something_that_is_not_a_git_repository_is_refused(server, run_cli, tmp_path):
    plain = tmp_path / "just-a-directory"
    plain.mkdir()
    result = run_cli("--config", server.config, "hook", "install", plain)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == f"error: {plain} is not a git repository"
    missing = run_cli("--config", server.config, "hook", "install", tmp_path / "nowhere")
    assert missing.exit_code == ExitCode.USAGE and "does not exist" in missing.stderr


def test_install_into_a_work_tree_is_refused(server, run_cli):
    result = run_cli("--config", server.config, "hook", "install", server.work)
    assert result.exit_code == ExitCode.USAGE
    assert "is not a bare repository" in result.stderr.splitlines()[0]


def test_install_without_a_test_command_is_refused(server, run_cli, write_hook_config):
    result = run_cli("--config", write_hook_config(test_command=[]), "hook", "install", server.bare)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == ("error: apps.tasks.deploy.test_command is empty: "
                                             "railguard has no test suite to run")
    assert not (server.bare / "hooks" / "pre-receive").exists()


def test_install_without_a_configuration_file_is_refused(server, run_cli):
    server.config.unlink()  # it sits in the working directory, where railguard would find it
    result = run_cli("hook", "install", server.bare)
    assert result.exit_code == ExitCode.USAGE
    assert "needs a configuration file" in result.stderr


def test_a_test_command_missing_on_the_server_rejects_the_push_with_a_reason(server, run_cli, write_hook_config):
    config = write_hook_config(test_command=["no-such-test-runner", "test"])
    assert run_cli("--config", config, "hook", "install", server.bare).exit_code == 0
    server.commit("anything", {"index.ts": "v2\n"})
    push = server.push("main")
    assert push.returncode != 0
    assert "push rejected: refs/heads/main: the test command 'no-such-test-runner' was not found" in push.output


def test_a_broken_configuration_rejects_the_push_rather_than_letting_it_through(hooked):
    hooked.config.write_text("this is = = not toml\n")
    hooked.commit("anything", {"index.ts": "v2\n"})
    push = hooked.push("main")
    assert push.returncode != 0
    assert "remote: error: " in push.output and "not valid TOML" in push.output


def test_a_hook_installed_before_the_hook_package_still_tests_pushes_and_uninstalls(server, run_cli):
    # What `railguard hook install` wrote before the hook had its own package: the same sh, with
    # the entry point's old module path. It must keep working where it is installed.
    assert run_cli("--config", server.config, "hook", "install", server.bare).exit_code == 0
    hook = server.bare / "hooks" / "pre-receive"
    old = hook.read_text().replace(" -m railguard.deploy.hook.main ", " -m railguard.deploy.hook_main ")
    assert " -m railguard.deploy.hook_main " in old
    hook.write_text(old)
    before = server.head("main")
    server.commit("breaks", {"FAIL": "1\n"})
    rejected = server.push("main")
    assert rejected.returncode != 0 and server.head("main") == before
    assert "push rejected: refs/heads/main" in rejected.output
    subprocess.run(["git", "rm", "--quiet", "FAIL"], cwd=server.work, check=True)
    fixed = server.commit("fixed")
    accepted = server.push("main")
    assert accepted.returncode == 0 and server.head("main") == fixed, accepted.output
    assert "passed: refs/heads/main" in accepted.output
    assert run_cli("hook", "uninstall", server.bare).exit_code == 0 and not hook.exists()


@pytest.mark.parametrize("entry_point", ["railguard.deploy.hook.main", "railguard.deploy.hook_main"])
def test_the_hooks_entry_point_imports_neither_the_cli_nor_click(entry_point):
    # git runs it on every push: a slow or broken command module must not slow or reject pushes.
    probe = (f"import sys, runpy\nsys.argv = ['hook', '--help']\n"
             f"try:\n    runpy.run_module({entry_point!r}, run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m == 'click' or m.startswith(('click.', 'railguard.cli'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout  # the entry point ran and printed its usage
    assert done.stdout.strip().splitlines()[-1] == "[]"
