"""The CapRover client and deployer against the fake CapRover (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import io
import json
import socket
import tarfile

import pytest

from deploy.gitrepos import APP_TOKEN, PASSWORD, WEBHOOK_TOKEN
from fakes.caprover import Build, FakeCapRover
from railguard.deploy.caprover import (
    BuildFailed,
    CapRoverAppNotFound,
    CapRoverBusy,
    CapRoverClient,
    CapRoverDeployer,
    CapRoverError,
    CapRoverRejectedCredentials,
    CapRoverUnreachable,
    RetryPolicy,
)
from railguard.deploy.deployer import VersionsUnavailable
from railguard.errors import ExitCode
from railguard.secrets import Secret


def make_deployer(captain: FakeCapRover, mode: str, *, app: str = "tasks", token: str = APP_TOKEN,
                  password: str = PASSWORD, sleeps: list[float] | None = None) -> CapRoverDeployer:
    recorded = sleeps if sleeps is not None else []
    client = CapRoverClient(captain.url, app_token=Secret(token), password=Secret(password), timeout=10,
                            retry=RetryPolicy(attempts=3), sleep=recorded.append)
    return CapRoverDeployer(client, app=app, mode=mode, build_timeout=60, poll_interval=0)


@pytest.fixture(params=["app-token", "login"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def test_deploy_uploads_git_archive_of_the_commit_with_its_sha_in_either_mode(captain, captain_app, repo, mode):
    sha = repo.sha()
    outcome = make_deployer(captain, mode).deploy_source(repo.archive(sha), sha)

    upload = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert upload.query == {"detached": "1"}
    assert upload.files["sourceFile"] == repo.archive(sha)
    assert upload.fields["gitHash"] == sha
    if mode == "app-token":
        assert upload.headers["x-captain-app-token"] == APP_TOKEN
        assert outcome.result == "accepted" and outcome.version is None
    else:
        assert "x-captain-app-token" not in upload.headers and upload.headers["x-captain-auth"]
        assert (outcome.result, outcome.version, outcome.image) == ("ok", 0, "img-captain-tasks:0")
    captain.finish_builds()
    assert [(d.git_hash, d.ok) for d in captain.deployments] == [(sha, True)]


def test_login_mode_polls_the_build_status_until_the_build_is_done(captain, captain_app, repo):
    captain.build_polls = 3
    sha = repo.sha()
    make_deployer(captain, "login").deploy_source(repo.archive(sha), sha)
    polls = [c for c in captain.calls_to("/api/v2/user/apps/appData/tasks", "GET")]
    assert [c.envelope["data"]["isAppBuilding"] for c in polls] == [True, True, True, False]


def test_a_failed_build_raises_with_the_tail_of_capRovers_log(captain, captain_app, repo):
    captain.fail_next_builds = 1
    sha = repo.sha()
    with pytest.raises(BuildFailed) as caught:
        make_deployer(captain, "login").deploy_source(repo.archive(sha), sha)
    assert caught.value.exit_code == ExitCode.ERROR
    assert "failed" in caught.value.message
    # ImageMaker logs "Build has failed!", then BuildLog.onBuildFailed the separator and the error.
    assert caught.value.log_tail[-4:] == ["Build has failed!", "----------------------", "Deploy failed!",
                                          "RUN bun test: exit code 1"]


def test_a_tree_without_dockerfile_or_captain_definition_fails_to_build_on_the_fake(captain, captain_app, repo):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("README.md")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(BuildFailed) as caught:
        make_deployer(captain, "login").deploy_source(buffer.getvalue(), "a" * 40)
    assert "no captain-definition or Dockerfile" in caught.value.log_tail[-1]


def test_http_200_with_status_1106_is_a_rejected_token_named_without_its_value(captain, captain_app, repo):
    sha = repo.sha()
    with pytest.raises(CapRoverRejectedCredentials) as caught:
        make_deployer(captain, "app-token", token="wrong-token-value").deploy_source(repo.archive(sha), sha)
    assert caught.value.message == ("CapRover rejected the app token for app 'tasks' (status 1106): either the "
                                    "token is wrong or CapRover has no app named 'tasks'")
    assert "$CAPROVER_APP_TOKEN" in caught.value.hint and "deploy.caprover_app" in caught.value.hint
    assert caught.value.exit_code == ExitCode.USAGE
    assert captain.calls[-1].http_status == 200 and captain.calls[-1].envelope["status"] == 1106
    assert captain.deployments == []


def test_a_wrong_password_is_rejected_in_login_mode(captain, captain_app, repo):
    with pytest.raises(CapRoverRejectedCredentials, match="rejected the password"):
        make_deployer(captain, "login", password="not-it").versions()


def test_an_unknown_app_is_not_found_after_a_login(captain, captain_app, repo):
    sha = repo.sha()
    with pytest.raises(CapRoverAppNotFound) as caught:
        make_deployer(captain, "login", app="taks").deploy_source(repo.archive(sha), sha)
    assert caught.value.message == "CapRover has no app named 'taks'"
    assert caught.value.exit_code == ExitCode.NOT_FOUND


def test_an_app_token_for_an_unknown_app_names_both_possibilities(captain, captain_app, repo):
    # Injector.injectUserForBuildTrigger: the failed app lookup falls through to injectUser's 1106.
    sha = repo.sha()
    with pytest.raises(CapRoverRejectedCredentials) as caught:
        make_deployer(captain, "app-token", app="taks").deploy_source(repo.archive(sha), sha)
    assert caught.value.message == ("CapRover rejected the app token for app 'taks' (status 1106): either the "
                                    "token is wrong or CapRover has no app named 'taks'")
    assert "deploy.caprover_app" in caught.value.hint
    assert captain.calls[-1].envelope == {"status": 1106, "description": "Auth token corrupted", "data": {}}


def test_http_429_is_retried_with_growing_backoff(captain, captain_app, repo):
    captain.busy_responses = 2
    sleeps: list[float] = []
    sha = repo.sha()
    outcome = make_deployer(captain, "app-token", sleeps=sleeps).deploy_source(repo.archive(sha), sha)
    assert outcome.result == "accepted"
    assert [c.http_status for c in captain.calls] == [429, 429, 200]
    assert sleeps == [1.0, 2.0]


def test_http_429_retries_are_bounded_and_end_in_busy(captain, captain_app, repo):
    captain.busy_responses = 10
    sleeps: list[float] = []
    sha = repo.sha()
    with pytest.raises(CapRoverBusy) as caught:
        make_deployer(captain, "app-token", sleeps=sleeps).deploy_source(repo.archive(sha), sha)
    assert len(captain.calls) == 4 and sleeps == [1.0, 2.0, 4.0]
    assert caught.value.exit_code == ExitCode.BUSY
    assert "another operation in progress" in caught.value.message


def test_an_unreachable_capRover_is_one_line_with_a_hint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = CapRoverClient(f"http://127.0.0.1:{port}", app_token=Secret(APP_TOKEN), timeout=5)
    with pytest.raises(CapRoverUnreachable) as caught:
        client.deploy_tar("tasks", b"", "a" * 40, use_app_token=True)
    assert caught.value.message.startswith(f"cannot reach CapRover at http://127.0.0.1:{port}")
    assert "\n" not in caught.value.message and caught.value.hint
    assert caught.value.exit_code == ExitCode.ERROR


def test_an_app_token_cannot_read_the_version_list(captain, captain_app):
    with pytest.raises(VersionsUnavailable):
        make_deployer(captain, "app-token").versions()
    assert captain.calls == []


def test_deploying_an_image_sends_a_from_line_as_captain_definition(captain, captain_app, repo):
    deployer = make_deployer(captain, "login")
    sha = repo.sha()
    deployer.deploy_source(repo.archive(sha), sha)
    outcome = deployer.deploy_image("img-captain-tasks:0", sha)
    last = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert json.loads(last.fields["captainDefinitionContent"]) == {
        "schemaVersion": 2, "dockerfileLines": ["FROM img-captain-tasks:0"]}
    assert last.fields["gitHash"] == sha
    assert (outcome.version, outcome.image) == (1, "img-captain-tasks:1")


def test_an_image_capRover_never_built_fails_to_deploy(captain, captain_app):
    with pytest.raises(BuildFailed) as caught:
        make_deployer(captain, "login").deploy_image("img-captain-tasks:7", None)
    assert "no such image" in caught.value.log_tail[-1]


def test_the_version_list_keeps_the_last_50_versions(captain, captain_app, repo):
    deployer = make_deployer(captain, "login")
    sha = repo.sha()
    tar = repo.archive(sha)
    captain.build_polls = 0
    for _ in range(52):
        captain._schedule(captain_app, Build("tasks", "upload", sha, tar, None))  # noqa: SLF001
    listing = deployer.versions()
    assert [v.version for v in listing.versions] == list(range(2, 52))
    assert listing.deployed_version == 51 and listing.get(51).image == "img-captain-tasks:51"


# --- the build webhook (the legacy flow, and the quirks the webhook gate relies on) -------------

def webhook_client(captain: FakeCapRover) -> CapRoverClient:
    return CapRoverClient(captain.url, timeout=10, sleep=lambda s: None)


def test_the_webhook_builds_the_branch_head_at_build_time_not_the_pushed_sha(captain, captain_app, repo):
    captain.webhook_builds = "queued"
    tested = repo.sha()
    client = webhook_client(captain)
    envelope = client.trigger_webhook(Secret(WEBHOOK_TOKEN), json.dumps({"ref": "refs/heads/main"}).encode(),
                                      {"X-GitHub-Event": "push"})
    assert envelope.status == 100
    later = repo.commit("slipped in after the tests", {"index.ts": "console.log('v2')\n"})
    repo.push("main")
    built = captain.run_queued_webhook_builds()
    assert [d.git_hash for d in built] == [later] and later != tested


def test_the_webhook_ignores_tag_pushes_and_other_branches(captain, captain_app, repo):
    client = webhook_client(captain)
    for ref in ("refs/tags/v1.0.0", "refs/heads/feature"):
        envelope = client.trigger_webhook(Secret(WEBHOOK_TOKEN), json.dumps({"ref": ref}).encode(),
                                          {"X-GitHub-Event": "push"})
        assert envelope.status == 100 and "Ignoring" in envelope.description
    assert captain.deployments == []


def test_the_webhook_builds_anyway_when_it_does_not_recognise_the_event(captain, captain_app, repo):
    webhook_client(captain).trigger_webhook(Secret(WEBHOOK_TOKEN), b"{}", {"X-Forgejo-Event": "push"})
    assert [d.source for d in captain.deployments] == ["webhook"]


def test_a_bad_webhook_token_answers_200_with_1106_and_is_an_error(captain, captain_app):
    with pytest.raises(CapRoverRejectedCredentials) as caught:
        webhook_client(captain).trigger_webhook(Secret("not-the-token"), b"{}", {"X-GitHub-Event": "push"})
    assert "webhook token" in caught.value.message and "not-the-token" not in caught.value.message
    assert captain.calls[-1].http_status == 200


def test_a_webhook_error_never_shows_the_token_from_the_query_string():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CapRoverError) as caught:
        CapRoverClient(f"http://127.0.0.1:{port}", timeout=5).trigger_webhook(Secret(WEBHOOK_TOKEN))
    assert WEBHOOK_TOKEN not in caught.value.message and WEBHOOK_TOKEN not in (caught.value.hint or "")


class EchoingCapRover(FakeCapRover):
    """A CapRover whose error message repeats the request, token and all (as proxies sometimes do)."""

    def _route(self, method, path, query, headers, body, call):
        return {"status": 1000, "description": f"cannot handle {path}?token={query.get('token')} "
                                               f"with {headers.get('x-captain-app-token')}", "data": {}}


def test_a_token_echoed_back_by_the_server_is_redacted_from_the_error():
    with EchoingCapRover() as captain:
        client = CapRoverClient(captain.url, app_token=Secret(APP_TOKEN), timeout=10)
        with pytest.raises(CapRoverError) as webhook:
            client.trigger_webhook(Secret(WEBHOOK_TOKEN))
        with pytest.raises(CapRoverError) as upload:
            client.deploy_tar("tasks", b"", "a" * 40, use_app_token=True)
    for caught in (webhook, upload):
        assert WEBHOOK_TOKEN not in caught.value.message and APP_TOKEN not in caught.value.message
    assert "token=***" in webhook.value.message and "with ***" in upload.value.message
