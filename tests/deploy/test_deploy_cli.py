"""``railguard deploy``, ``rollback`` and ``deploys list`` end to end: real git, the fake CapRover."""

from __future__ import annotations

import json
import socket

import pytest

from deploy.gitrepos import APP_TOKEN, PASSWORD
from railguard.deploy import actions
from railguard.deploy.actions import StepResult
from railguard.deploy.state import DeployState
from railguard.errors import ExitCode


def assert_no_secret(result) -> None:
    for secret in (APP_TOKEN, PASSWORD):
        assert secret not in result.stdout and secret not in result.stderr


def history(tmp_path):
    return DeployState(tmp_path / "state" / "deploys.sqlite3").history("tasks")


def test_deploy_uploads_exactly_head_and_records_it(run_cli, write_config, captain, captain_app, repo, token_env,
                                                     tmp_path):
    result = run_cli("--config", write_config(), "deploy", env=token_env)
    assert result.exit_code == 0, result.stderr
    assert f"deployed {repo.sha()[:12]} to tasks: CapRover accepted it" in result.stdout
    upload = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert upload.files["sourceFile"] == repo.archive("HEAD") and upload.fields["gitHash"] == repo.sha()
    [record] = history(tmp_path)
    assert (record.kind, record.ref, record.git_hash, record.result) == ("deploy", "HEAD", repo.sha(), "accepted")
    assert_no_secret(result)


def test_deploy_of_an_older_ref_ships_that_commit_not_the_work_tree(run_cli, write_config, captain, captain_app,
                                                                     repo, token_env):
    first = repo.sha()
    repo.commit("second", {"index.ts": "console.log('v2')\n"})
    (repo.path / "index.ts").write_text("uncommitted edit\n")
    result = run_cli("--config", write_config(), "deploy", first[:10], env=token_env)
    assert result.exit_code == 0, result.stderr
    upload = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert upload.fields["gitHash"] == first and upload.files["sourceFile"] == repo.archive(first)


def test_deploy_json_is_one_document_without_secrets(run_cli, write_config, captain, captain_app, repo, login_env):
    result = run_cli("--config", write_config(mode="login"), "deploy", "--json", env=login_env)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["deploy"]["result"] == "ok" and document["deploy"]["version"] == 0
    assert document["deploy"]["image"] == "img-captain-tasks:0"
    assert_no_secret(result)


@pytest.mark.parametrize(("setting", "env", "code", "message"), [
    ({}, {"CAPROVER_APP_TOKEN": "wrong-token-value"}, ExitCode.USAGE,
     "error: CapRover rejected the app token for app 'tasks' (status 1106): either the token is wrong or "
     "CapRover has no app named 'tasks'"),
    ({}, {}, ExitCode.USAGE, "error: the CapRover app token is not set ($CAPROVER_APP_TOKEN)"),
    # CapRover answers an app token for an unknown app with the same 1106 (Injector.ts).
    ({"caprover_app": "taks"}, {"CAPROVER_APP_TOKEN": APP_TOKEN}, ExitCode.USAGE,
     "error: CapRover rejected the app token for app 'taks' (status 1106): either the token is wrong or "
     "CapRover has no app named 'taks'"),
    ({"caprover_app": "taks", "mode": "login"}, {"CAPROVER_PASSWORD": PASSWORD}, ExitCode.NOT_FOUND,
     "error: CapRover has no app named 'taks'"),
    ({"mode": "login"}, {"CAPROVER_PASSWORD": "wrong-password-value"}, ExitCode.USAGE,
     "error: CapRover rejected the password (or the login it gave) (status 1105)"),
])
def test_bad_credentials_and_names_are_one_line_with_a_hint(run_cli, write_config, captain, captain_app, repo,
                                                            setting, env, code, message):
    result = run_cli("--config", write_config(**setting), "deploy", env=env)
    assert result.exit_code == code
    lines = result.stderr.splitlines()
    assert lines[0] == message and lines[1].startswith("hint: ") and len(lines) == 2
    assert captain.deployments == []
    for value in (*env.values(), APP_TOKEN, PASSWORD):
        assert value not in result.stdout + result.stderr


def test_an_unreachable_capRover_is_an_error_with_a_hint(run_cli, write_config, repo, token_env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli("--config", write_config(caprover_url=f"http://127.0.0.1:{port}"), "deploy", env=token_env)
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr.startswith(f"error: cannot reach CapRover at http://127.0.0.1:{port}")
    assert "hint: Check deploy.caprover_url" in result.stderr
    assert_no_secret(result)


def test_deploy_outside_a_git_repository_is_a_usage_error(run_cli, write_config, captain, captain_app, tmp_path,
                                                           token_env):
    elsewhere = tmp_path / "not-a-repo"
    elsewhere.mkdir()
    result = run_cli("--config", write_config(), "deploy", "--repo", elsewhere, env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == f"error: {elsewhere} is not a git repository"


def test_deploy_of_an_unknown_ref_is_not_found(run_cli, write_config, captain, captain_app, repo, token_env):
    result = run_cli("--config", write_config(), "deploy", "no-such-branch", env=token_env)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "'no-such-branch' does not name a commit" in result.stderr
    assert captain.calls == []


def test_deploy_without_a_caprover_url_says_which_key_to_set(run_cli, write_config, repo, token_env, tmp_path):
    config = write_config()
    config.write_text(config.read_text().replace("caprover_url", "# caprover_url"))
    result = run_cli("--config", config, "deploy", env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == "error: apps.tasks.deploy.caprover_url is not set"


def test_a_failed_build_shows_the_build_log_and_is_recorded_as_failed(run_cli, write_config, captain, captain_app,
                                                                      repo, login_env, tmp_path):
    captain.fail_next_builds = 1
    result = run_cli("--config", write_config(mode="login"), "deploy", env=login_env)
    assert result.exit_code == ExitCode.ERROR
    assert ("  | Build has failed!\n  | ----------------------\n  | Deploy failed!\n"
            "  | RUN bun test: exit code 1\n") in result.stderr
    assert "error: CapRover's build of version 0 of tasks failed" in result.stderr
    [record] = history(tmp_path)
    assert record.result == "failed" and "failed" in record.detail


def test_capRover_busy_past_the_retries_exits_busy(run_cli, write_config, captain, captain_app, repo, token_env):
    captain.busy_responses = 1
    result = run_cli("--config", write_config(busy_retries=0), "deploy", env=token_env)
    assert result.exit_code == ExitCode.BUSY
    assert "HTTP 429" in result.stderr


# --- rollback ---------------------------------------------------------------------------------------

def test_rollback_with_an_app_token_rebuilds_the_previous_commit_when_no_image_is_known(
        run_cli, write_config, captain, captain_app, repo, token_env, tmp_path):
    config = write_config()
    first = repo.sha()
    assert run_cli("--config", config, "deploy", env=token_env).exit_code == 0
    repo.commit("second", {"index.ts": "console.log('v2')\n"})
    assert run_cli("--config", config, "deploy", env=token_env).exit_code == 0

    result = run_cli("--config", config, "rollback", env=token_env)
    assert result.exit_code == 0, result.stderr
    upload = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert upload.fields["gitHash"] == first and upload.files["sourceFile"] == repo.archive(first)
    latest = history(tmp_path)[0]
    assert (latest.kind, latest.git_hash, latest.rolled_back_from) == ("rollback", first, repo.sha())


def test_rollback_with_an_app_token_deploys_the_recorded_image(run_cli, write_config, captain, captain_app, repo,
                                                               token_env, login_env):
    """Deploys made in login mode record their image; a rollback then needs only the app token."""
    first = repo.sha()
    assert run_cli("--config", write_config(mode="login"), "deploy", env=login_env).exit_code == 0
    repo.commit("second", {"index.ts": "console.log('v2')\n"})
    assert run_cli("--config", write_config(mode="login"), "deploy", env=login_env).exit_code == 0

    result = run_cli("--config", write_config(mode="app-token"), "rollback", env=token_env)
    assert result.exit_code == 0, result.stderr
    # The steps' lines (before and after the deploy) aside, the rollback's report comes first.
    lines = result.stdout.splitlines()
    report = [line for line in lines if not line.startswith(("ok     ", "skip   ", "FAILED "))]
    assert report[0].startswith("rolled back tasks to deploy #1 (img-captain-tasks:0): CapRover accepted it")
    assert "skip   monitor: skipped: the monitor watches nothing (the monitor has no targets)" in lines
    last = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert last.headers["x-captain-app-token"] == APP_TOKEN
    assert json.loads(last.fields["captainDefinitionContent"])["dockerfileLines"] == ["FROM img-captain-tasks:0"]
    assert last.fields["gitHash"] == first
    captain.finish_builds()
    assert captain.deployments[-1].ok and captain_app.deployed_version == 2


def test_rollback_in_login_mode_reads_capRovers_versions(run_cli, write_config, captain, captain_app, repo,
                                                         login_env, tmp_path):
    config = write_config(mode="login")
    run_cli("--config", config, "deploy", env=login_env)
    repo.commit("second", {"index.ts": "console.log('v2')\n"})
    run_cli("--config", config, "deploy", env=login_env)
    captain.fail_next_builds = 1
    repo.commit("third, broken", {"index.ts": "broken\n"})
    assert run_cli("--config", config, "deploy", env=login_env).exit_code == ExitCode.ERROR

    result = run_cli("--config", config, "rollback", "--json", env=login_env)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    # Version 2 never built, version 1 is live: the rollback goes to version 0 and creates version 3.
    assert (document["deploy"]["version"], document["deploy"]["image"]) == (3, "img-captain-tasks:0")
    assert document["target"] == "version 0 (img-captain-tasks:0)"
    assert history(tmp_path)[0].rolled_back_from == repo.sha("HEAD~1")
    last = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert json.loads(last.fields["captainDefinitionContent"])["dockerfileLines"] == ["FROM img-captain-tasks:0"]


def test_rollback_to_a_version_number_uses_capRovers_image_name(run_cli, write_config, captain, captain_app, repo,
                                                                token_env, login_env):
    run_cli("--config", write_config(mode="login"), "deploy", env=login_env)
    result = run_cli("--config", write_config(), "rollback", "--to", "0", env=token_env)
    assert result.exit_code == 0, result.stderr
    last = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert json.loads(last.fields["captainDefinitionContent"])["dockerfileLines"] == ["FROM img-captain-tasks:0"]


def test_rollback_to_a_version_capRover_no_longer_keeps_is_not_found(run_cli, write_config, captain, captain_app,
                                                                      repo, login_env):
    run_cli("--config", write_config(mode="login"), "deploy", env=login_env)
    result = run_cli("--config", write_config(mode="login"), "rollback", "--to", "42", env=login_env)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr.splitlines()[0] == "error: CapRover has no version 42 of tasks (it keeps the last 50)"


def test_a_second_rollback_does_not_return_to_the_commit_rolled_back_from(run_cli, write_config, captain,
                                                                          captain_app, repo, token_env):
    config = write_config()
    run_cli("--config", config, "deploy", env=token_env)
    repo.commit("second", {"index.ts": "console.log('v2')\n"})
    run_cli("--config", config, "deploy", env=token_env)
    assert run_cli("--config", config, "rollback", env=token_env).exit_code == 0
    again = run_cli("--config", config, "rollback", env=token_env)
    assert again.exit_code == ExitCode.NOT_FOUND
    assert "no earlier deploy of tasks to roll back to" in again.stderr


def test_rollback_with_nothing_recorded_is_not_found(run_cli, write_config, captain, captain_app, repo, token_env):
    result = run_cli("--config", write_config(), "rollback", env=token_env)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr.splitlines() == ["error: railguard has recorded no deploy of tasks yet",
                                          "hint: Give --to VERSION (CapRover's version number) or --to SHA"]


def test_rollback_to_something_that_is_neither_version_nor_sha_is_a_usage_error(run_cli, write_config, captain,
                                                                                  captain_app, repo, token_env):
    result = run_cli("--config", write_config(), "rollback", "--to", "last-friday", env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert captain.calls == []


# --- deploys list ------------------------------------------------------------------------------------

def test_deploys_list_shows_every_recorded_deploy_newest_first(run_cli, write_config, captain, captain_app, repo,
                                                               token_env):
    config = write_config()
    run_cli("--config", config, "deploy", env=token_env)
    repo.commit("second", {"index.ts": "console.log('v2')\n"})
    run_cli("--config", config, "deploy", env=token_env)
    result = run_cli("--config", config, "deploys", "list", "--json")
    assert result.exit_code == 0
    deploys = json.loads(result.stdout)["deploys"]
    assert [d["git_hash"] for d in deploys] == [repo.sha("HEAD"), repo.sha("HEAD~1")]
    table = run_cli("--config", config, "deploys", "list")
    assert repo.sha()[:12] in table.stdout and "accepted" in table.stdout


def test_deploys_list_is_calm_when_nothing_was_deployed(run_cli, write_config, repo):
    result = run_cli("--config", write_config(), "deploys", "list")
    assert (result.exit_code, result.stdout) == (0, "no deploys of tasks recorded yet\n")


def test_deploys_list_can_show_capRovers_versions_in_login_mode(run_cli, write_config, captain, captain_app, repo,
                                                                 login_env, token_env):
    config = write_config(mode="login")
    run_cli("--config", config, "deploy", env=login_env)
    result = run_cli("--config", config, "deploys", "list", "--caprover", "--json", env=login_env)
    document = json.loads(result.stdout)
    assert document["deployed_version"] == 0
    assert document["versions"] == [{"version": 0, "image": "img-captain-tasks:0", "git_hash": repo.sha(),
                                     "time": captain_app.versions[0].time_stamp}]
    refused = run_cli("--config", write_config(), "deploys", "list", "--caprover", env=token_env)
    assert refused.exit_code == ExitCode.USAGE and "not to an app token" in refused.stderr


# --- the post-deploy step point (where issue 8's smoke check plugs in) --------------------------------

def test_a_failing_post_deploy_step_turns_the_deploy_into_check_failed(run_cli, write_config, captain, captain_app,
                                                                       repo, token_env, monkeypatch):
    seen = []

    def smoke_stand_in(context):
        seen.append((context.app_name, context.record.git_hash, context.record.result))
        return StepResult(name="smoke", ok=False, summary="/version reports another commit")

    monkeypatch.setattr(actions, "DEFAULT_POST_DEPLOY_STEPS", (smoke_stand_in,))
    result = run_cli("--config", write_config(), "deploy", env=token_env)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert seen == [("tasks", repo.sha(), "accepted")]
    assert "FAILED smoke: /version reports another commit" in result.stdout


def test_the_token_can_come_from_a_file_and_never_reaches_json_output(run_cli, write_config, captain, captain_app,
                                                                      repo, tmp_path):
    secret_file = tmp_path / "app-token"
    secret_file.write_text(APP_TOKEN + "\n")
    ok = run_cli("--config", write_config(), "deploy", "--json", env={"CAPROVER_APP_TOKEN_FILE": str(secret_file)})
    assert ok.exit_code == 0, ok.stderr
    assert captain.calls[-1].headers["x-captain-app-token"] == APP_TOKEN
    assert_no_secret(ok)
    secret_file.write_text("wrong-token-from-file\n")
    bad = run_cli("--config", write_config(), "deploy", "--json", env={"CAPROVER_APP_TOKEN_FILE": str(secret_file)})
    assert bad.exit_code == ExitCode.USAGE
    assert json.loads(bad.stdout)["error"] == ("CapRover rejected the app token for app 'tasks' (status 1106): "
                                               "either the token is wrong or CapRover has no app named 'tasks'")
    assert "wrong-token-from-file" not in bad.stdout + bad.stderr


def test_a_caprover_url_without_a_scheme_is_a_configuration_error(run_cli, write_config, repo, token_env):
    result = run_cli("--config", write_config(caprover_url="captain.example.com"), "deploy", env=token_env)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        "error: deploy.caprover_url 'captain.example.com' is not an http(s) URL",
        "hint: Use CapRover's base URL, e.g. https://captain.example.com"]


def test_a_second_deploy_of_the_same_app_at_the_same_time_is_busy(run_cli, write_config, captain, captain_app, repo,
                                                                  token_env, tmp_path):
    from railguard.locking import exclusive_lock

    (tmp_path / "state").mkdir()
    with exclusive_lock(tmp_path / "state" / "deploy-tasks.lock", "a deploy of tasks"):
        result = run_cli("--config", write_config(), "deploy", env=token_env)
    assert result.exit_code == ExitCode.BUSY
    assert result.stderr.splitlines()[0] == "error: another railguard run is already working on a deploy of tasks"
    assert captain.calls == []


def test_a_deploy_capRover_refuses_is_told_to_the_owner(run_cli, write_config, captain, captain_app, repo):
    from local_http import JsonReceiver

    owner = JsonReceiver()
    try:
        result = run_cli("--config", write_config(), "deploy",
                         env={"CAPROVER_APP_TOKEN": "wrong-token-value", "RAILGUARD_NOTIFY_URLS": owner.url})
        assert result.exit_code == ExitCode.USAGE
        [message] = owner.messages
        assert message["title"] == "tasks deploy FAILED"
        assert "CapRover rejected the app token" in message["message"]
        assert "wrong-token-value" not in json.dumps(message)
    finally:
        owner.stop()
