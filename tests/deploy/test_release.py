"""Option A, ``railguard release``: checks, tests, annotated tag, push, deploy of exactly that tag."""

from __future__ import annotations

import json
import subprocess

import pytest

from deploy.gitrepos import APP_TOKEN, git
from railguard.deploy.release import ReleaseRefused, SemVer, latest_release, next_version
from railguard.deploy.state import DeployState
from railguard.errors import ExitCode, UsageError


@pytest.mark.parametrize(("latest", "request_", "expected"), [
    (None, "patch", "0.0.1"),
    (None, "minor", "0.1.0"),
    ("1.2.3", "patch", "1.2.4"),
    ("1.2.3", "minor", "1.3.0"),
    ("1.2.3", "major", "2.0.0"),
    ("1.2.3", "1.10.0", "1.10.0"),
    ("1.2.3", "v2.0.0", "2.0.0"),
])
def test_next_version_follows_semantic_versioning(latest, request_, expected):
    assert str(next_version(SemVer.parse(latest) if latest else None, request_, "v")) == expected


@pytest.mark.parametrize("request_", ["1.2.3", "1.2.2", "0.9.9"])
def test_a_version_not_greater_than_the_latest_is_refused(request_):
    with pytest.raises(ReleaseRefused, match="is not greater than the latest release v1.2.3"):
        next_version(SemVer(1, 2, 3), request_, "v")


def test_a_request_that_is_not_a_version_is_a_usage_error():
    with pytest.raises(UsageError, match="'1.2' is not a version"):
        next_version(None, "1.2", "v")


def test_latest_release_compares_numerically_and_ignores_other_tags():
    assert latest_release(["v1.9.0", "v1.10.0", "v2.0.0-rc1", "nightly", "v01.0.0"], "v") == SemVer(1, 10, 0)


def test_release_tags_pushes_and_deploys_exactly_the_tagged_commit(run_cli, write_config, captain, captain_app,
                                                                   repo, token_env, tmp_path):
    git(repo.path, "tag", "-a", "-m", "old", "v1.2.3")
    repo.commit("a fix", {"index.ts": "console.log('fixed')\n"})
    repo.push("main")

    result = run_cli("--config", write_config(), "release", env=token_env)
    assert result.exit_code == 0, result.stderr
    assert "tests: `sh run-tests.sh` passed" in result.stdout
    assert "tagged v1.2.4 and pushed it to origin" in result.stdout
    assert f"released v1.2.4 ({repo.sha()[:12]}) to tasks: CapRover accepted it" in result.stdout

    tag_commit = repo.sha("v1.2.4")
    assert tag_commit == repo.sha("HEAD")
    assert git(repo.path, "cat-file", "-t", "v1.2.4") == "tag"
    assert git(repo.origin, "rev-parse", "v1.2.4^{commit}") == tag_commit
    upload = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    origin_archive = subprocess.run(["git", "archive", "--format=tar", "v1.2.4"], cwd=repo.origin,
                                    capture_output=True, check=True).stdout
    assert upload.files["sourceFile"] == origin_archive
    assert upload.fields["gitHash"] == tag_commit
    [record] = DeployState(tmp_path / "state" / "deploys.sqlite3").history("tasks")
    assert (record.kind, record.tag, record.git_hash) == ("release", "v1.2.4", tag_commit)
    assert APP_TOKEN not in result.stdout + result.stderr


def test_release_json_names_the_tag_and_commit(run_cli, write_config, captain, captain_app, repo, token_env):
    result = run_cli("--config", write_config(), "release", "minor", "--json", env=token_env)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["tag"], document["commit"], document["ok"]) == ("v0.1.0", repo.sha(), True)


def test_dry_run_checks_and_lists_every_step_but_changes_nothing(run_cli, write_config, captain, captain_app, repo,
                                                                 token_env):
    result = run_cli("--config", write_config(), "release", "major", "--dry-run", env=token_env)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"dry run: would release v1.0.0 ({repo.sha()[:12]}); nothing was changed"
    assert [line.split(". ", 1)[0].strip() for line in lines[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert "run the tests: sh run-tests.sh" in result.stdout and "push v1.0.0 to origin" in result.stdout
    assert git(repo.path, "tag", "--list") == "" and git(repo.origin, "tag", "--list") == ""
    assert captain.calls == []


def test_failing_tests_stop_the_release_before_any_tag(run_cli, write_config, captain, captain_app, repo,
                                                       token_env):
    repo.commit("breaks a test", {"FAIL": "1\n"})
    repo.push("main")
    result = run_cli("--config", write_config(), "release", env=token_env)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "  | tasks.test.ts: expected 3 tasks, got 2" in result.stderr
    assert "error: tests failed, nothing was tagged: `sh run-tests.sh` failed with exit code 1" in result.stderr
    assert git(repo.path, "tag", "--list") == "" and git(repo.origin, "tag", "--list") == ""
    assert captain.calls == []


def test_a_hanging_test_suite_is_stopped_at_the_timeout(run_cli, write_config, captain, captain_app, repo,
                                                         token_env):
    repo.commit("hangs", {"run-tests.sh": "echo starting\nexec sleep 60\n"})
    repo.push("main")
    result = run_cli("--config", write_config(test_timeout="1s"), "release", env=token_env)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "did not finish within 1s and was stopped" in result.stderr
    assert git(repo.path, "tag", "--list") == ""


def test_release_refuses_another_branch(run_cli, write_config, captain, captain_app, repo, token_env):
    git(repo.path, "switch", "--quiet", "-c", "feature")
    result = run_cli("--config", write_config(), "release", env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == ["error: releases are cut from main, and HEAD is on feature",
                                          "hint: git switch main"]


def test_release_refuses_a_dirty_tree(run_cli, write_config, captain, captain_app, repo, token_env):
    (repo.path / "index.ts").write_text("half done\n")
    result = run_cli("--config", write_config(), "release", env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == "error: the working tree has uncommitted changes (index.ts)"


def test_release_refuses_a_branch_behind_its_remote(run_cli, write_config, captain, captain_app, repo, token_env,
                                                    tmp_path):
    other = tmp_path / "colleague"
    subprocess.run(["git", "clone", "--quiet", str(repo.origin), str(other)], check=True)
    git(other, "-c", "user.name=C", "-c", "user.email=c@example.test", "commit", "--quiet", "--allow-empty",
        "-m", "pushed by a colleague")
    git(other, "push", "--quiet", "origin", "main")
    result = run_cli("--config", write_config(), "release", env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == "error: main is 1 commit behind origin/main"
    assert git(repo.path, "tag", "--list") == ""


def test_release_refuses_a_version_not_greater_than_the_latest_tag(run_cli, write_config, captain, captain_app,
                                                                   repo, token_env):
    git(repo.path, "tag", "-a", "-m", "old", "v1.2.3")
    result = run_cli("--config", write_config(), "release", "1.2.3", env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert "v1.2.3 is not greater than the latest release v1.2.3" in result.stderr


def test_release_without_a_test_command_says_what_to_configure(run_cli, write_config, captain, captain_app, repo,
                                                               token_env):
    result = run_cli("--config", write_config(test_command=[]), "release", env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == ("error: apps.tasks.deploy.test_command is empty: "
                                             "railguard has no test suite to run")


def test_release_with_a_test_command_that_does_not_exist_is_refused(run_cli, write_config, captain, captain_app,
                                                                    repo, token_env):
    result = run_cli("--config", write_config(test_command=["no-such-test-runner", "test"]), "release",
                     env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert "the test command 'no-such-test-runner' was not found" in result.stderr
    assert git(repo.path, "tag", "--list") == ""


def test_a_failed_tag_push_removes_the_local_tag_again(run_cli, write_config, captain, captain_app, repo,
                                                       token_env):
    hook = repo.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'tags are frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = run_cli("--config", write_config(), "release", env=token_env)
    assert result.exit_code == ExitCode.ERROR
    assert "pushing v0.0.1 to origin failed" in result.stderr
    assert git(repo.path, "tag", "--list") == ""
    assert captain.calls == []
