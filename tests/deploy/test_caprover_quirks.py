"""CapRover's quirks, each as the real server shows it (the fake cites the source file), and what
railguard makes of them: a superseded deploy, two-factor login, gateway errors while CapRover
restarts, image names with a push registry, and upstream bodies kept out of messages."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from deploy.gitrepos import APP_TOKEN, PASSWORD
from fakes import PlainText
from fakes.caprover import BUILD_LOG_SIZE, Build, FakeCapRover, image_environment
from railguard.config import DeploySettings
from railguard.deploy.actions import build_deployer
from railguard.deploy.caprover import (
    DESCRIPTION_LIMIT,
    CapRoverBusy,
    CapRoverClient,
    CapRoverDeployer,
    CapRoverError,
    CapRoverRejectedCredentials,
    CapRoverUnreachable,
    DeploySuperseded,
    RetryPolicy,
)
from railguard.deploy.state import DeployState
from railguard.errors import ExitCode
from railguard.secrets import Secret

OTHER = "d" * 40


def login_deployer(captain: FakeCapRover, *, sleep=None, otp: str | None = None) -> CapRoverDeployer:
    client = CapRoverClient(captain.url, password=Secret(PASSWORD), otp_token=Secret(otp) if otp else None,
                            timeout=10, retry=RetryPolicy(attempts=3), sleep=sleep or (lambda s: None))
    return CapRoverDeployer(client, app="tasks", mode="login", build_timeout=60, poll_interval=0)


def dashboard_deploy(captain: FakeCapRover, tar: bytes, git_hash: str) -> None:
    """Someone deploys from the dashboard or the CLI: a login and a detached upload, over HTTP."""
    CapRoverClient(captain.url, password=Secret(PASSWORD), timeout=10).deploy_tar("tasks", tar, git_hash,
                                                                                use_app_token=False)


def keep_another_app_building(captain: FakeCapRover) -> None:
    """CapRover has one build queue for all apps: while this one runs, a deploy of tasks waits."""
    captain.add_app("other")
    polls, captain.build_polls = captain.build_polls, 10_000
    captain._schedule(captain.apps["other"], Build("other", "definition", None, None,  # noqa: SLF001
                                                   {"schemaVersion": 2, "imageName": "nginx:1"}))
    captain.build_polls = polls


# --- superseded -----------------------------------------------------------------------------

def test_a_queued_deploy_replaced_by_a_dashboard_deploy_is_superseded_not_ok(captain, captain_app, repo):
    keep_another_app_building(captain)
    sha = repo.sha()
    other_tree = repo.archive(sha)
    interfered: list[float] = []

    def meanwhile(seconds: float) -> None:
        # While railguard's build waits in the queue, a dashboard deploy replaces its source
        # (ServiceManager.scheduleDeployNewVersion); then the queue runs.
        if not interfered:
            dashboard_deploy(captain, other_tree, OTHER)
            captain.finish_builds()
        interfered.append(seconds)

    with pytest.raises(DeploySuperseded) as caught:
        login_deployer(captain, sleep=meanwhile).deploy_source(repo.archive(sha), sha)

    assert caught.value.exit_code == ExitCode.SUPERSEDED == 8
    assert caught.value.message == (f"superseded by another deploy: CapRover runs version 0 of tasks, built from "
                                    f"{OTHER[:12]}, not {sha[:12]}")
    assert [d.git_hash for d in captain.deployments if d.app == "tasks"] == [OTHER]
    first_poll = captain.calls_to("/api/v2/user/apps/appData/tasks", "GET")[0].envelope["data"]
    assert first_poll["isAppBuilding"] is True
    assert first_poll["logs"]["lines"][-1] == "An active build (other) is in progress. This build is queued..."


def test_a_deploy_that_went_live_and_was_replaced_before_the_poll_is_superseded(captain, captain_app, repo):
    sha = repo.sha()
    captain.build_polls = 0  # builds finish at once
    deployer = login_deployer(captain)
    original = deployer.client.deploy_tar

    def upload_then_someone_else(app, tar, git_hash, *, use_app_token):
        envelope = original(app, tar, git_hash, use_app_token=use_app_token)
        dashboard_deploy(captain, tar, OTHER)
        return envelope

    deployer.client.deploy_tar = upload_then_someone_else  # type: ignore[method-assign]
    with pytest.raises(DeploySuperseded) as caught:
        deployer.deploy_source(repo.archive(sha), sha)
    assert caught.value.message.endswith(f"not {sha[:12]} (railguard's build was version 0, replaced since)")
    assert caught.value.version == 1 and caught.value.live_git_hash == OTHER


class DashboardDeploysWhileQueued(FakeCapRover):
    """The first status poll of a queued tasks build meets a dashboard deploy of another commit."""

    tree: bytes = b""
    done = False

    def _build_status(self, app):
        if not self.done and app.name == "tasks" and any(b.app == "tasks" for b in self.queue):
            self.done = True
            self._schedule(app, Build("tasks", "upload", OTHER, self.tree, None))
            reply = super()._build_status(app)
            self.finish_builds()
            return reply
        return super()._build_status(app)


def test_railguard_deploy_reports_superseded_with_exit_8_and_records_it(run_cli, tmp_path, repo, write_config,
                                                                         login_env):
    with DashboardDeploysWhileQueued(password=PASSWORD) as captain:
        captain.add_app("tasks", app_token=APP_TOKEN)
        keep_another_app_building(captain)
        captain.tree = repo.archive(repo.sha())
        config = write_config(mode="login", caprover_url=captain.url)
        result = run_cli("--config", config, "deploy", env=login_env)
        listing = run_cli("--config", config, "deploys", "list", "--json", env=login_env)

    assert result.exit_code == ExitCode.SUPERSEDED, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-2].startswith("error: superseded by another deploy: CapRover runs version 0 of tasks")
    assert lines[-1].startswith("hint: A deploy from the dashboard")
    [record] = json.loads(listing.stdout)["deploys"]
    assert record["result"] == "superseded" and record["version"] == 0
    assert record["detail"].startswith("superseded by another deploy")


def test_a_history_written_before_superseded_existed_keeps_its_rows_and_accepts_it(tmp_path):
    path = tmp_path / "deploys.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE deploys (id INTEGER PRIMARY KEY, app TEXT NOT NULL, caprover_app TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('deploy', 'release', 'rollback')), ref TEXT, git_hash TEXT,
                tag TEXT, image TEXT, version INTEGER, started_at TEXT NOT NULL, finished_at TEXT,
                result TEXT NOT NULL CHECK (result IN ('pending', 'accepted', 'ok', 'failed')), detail TEXT,
                rolled_back_from TEXT);
            CREATE INDEX deploys_by_app ON deploys (app, id);
            INSERT INTO deploys (app, caprover_app, kind, git_hash, started_at, result)
                VALUES ('tasks', 'tasks', 'deploy', 'aaaa', '2026-11-30T10:00:00+00:00', 'ok');
        """)
    db.close()
    state = DeployState(path)
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    deploy_id = state.start(app="tasks", caprover_app="tasks", kind="deploy", ref="main", git_hash="bbbb", now=now)
    state.finish(deploy_id, result="superseded", now=now, detail="superseded by another deploy")
    assert [(r.git_hash, r.result) for r in state.history("tasks")] == [("bbbb", "superseded"), ("aaaa", "ok")]


# --- two-factor login -------------------------------------------------------------------------

def test_a_login_without_the_two_factor_code_asks_for_CAPROVER_OTP_TOKEN(repo):
    with FakeCapRover(password=PASSWORD, otp_token="123456") as captain:
        captain.add_app("tasks")
        with pytest.raises(CapRoverRejectedCredentials) as caught:
            login_deployer(captain).versions()
    assert caught.value.message == "CapRover asks for a two-factor code (status 1114) and none was given"
    assert "Export CAPROVER_OTP_TOKEN" in caught.value.hint
    assert caught.value.exit_code == ExitCode.USAGE


def test_the_two_factor_code_is_read_from_CAPROVER_OTP_TOKEN_and_sent_with_the_login(repo):
    with FakeCapRover(password=PASSWORD, otp_token="123456") as captain:
        captain.add_app("tasks")
        settings = DeploySettings(caprover_url=captain.url, mode="login", poll_interval="0s")
        deployer = build_deployer("tasks", settings, env={"CAPROVER_PASSWORD": PASSWORD,
                                                          "CAPROVER_OTP_TOKEN": "123456"})
        sha = repo.sha()
        outcome = deployer.deploy_source(repo.archive(sha), sha)
        [login] = captain.calls_to("/api/v2/login")
    assert json.loads(login.body) == {"password": PASSWORD, "otpToken": "123456"}
    assert outcome.result == "ok"


def test_a_wrong_two_factor_code_names_both_the_password_and_the_code(repo):
    with FakeCapRover(password=PASSWORD, otp_token="123456") as captain:
        captain.add_app("tasks")
        with pytest.raises(CapRoverRejectedCredentials) as caught:
            login_deployer(captain, otp="654321").versions()
    assert caught.value.message == "CapRover rejected the password or the two-factor code (status 1105)"
    assert "654321" not in caught.value.message + (caught.value.hint or "")
    assert "CAPROVER_OTP_TOKEN" in caught.value.hint


# --- retries ----------------------------------------------------------------------------------

def test_gateway_errors_while_capRover_restarts_are_retried_with_backoff(captain, captain_app, repo):
    captain.gateway_errors = [502, 503, 504]
    sleeps: list[float] = []
    sha = repo.sha()
    outcome = login_deployer(captain, sleep=sleeps.append).deploy_source(repo.archive(sha), sha)
    assert outcome.result == "ok"
    assert [c.http_status for c in captain.calls[:4]] == [502, 503, 504, 200]
    assert sleeps[:3] == [1.0, 2.0, 4.0]


def test_gateway_errors_that_do_not_end_are_bounded_and_never_quote_the_page(captain, captain_app, repo):
    captain.gateway_errors = [503] * 10
    sleeps: list[float] = []
    client = CapRoverClient(captain.url, app_token=Secret(APP_TOKEN), timeout=10, retry=RetryPolicy(attempts=3),
                            sleep=sleeps.append)
    with pytest.raises(CapRoverUnreachable) as caught:
        client.deploy_tar("tasks", repo.archive(repo.sha()), repo.sha(), use_app_token=True)
    assert caught.value.message == ("CapRover answered POST /api/v2/user/apps/appData/tasks with HTTP 503 "
                                    "(service unavailable) 4 times")
    assert sleeps == [1.0, 2.0, 4.0] and len(captain.calls) == 4
    assert "<html>" not in caught.value.message and "Temporarily" not in caught.value.message


def test_429_is_plain_text_and_only_for_non_get_calls_under_user(captain, captain_app):
    captain.busy_responses = 1
    token = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{captain.url}/api/v2/login", data=json.dumps({"password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"})).read())["data"]["token"]
    with urllib.request.urlopen(urllib.request.Request(f"{captain.url}/api/v2/user/apps/appDefinitions",
                                                       headers={"x-captain-auth": token})) as answer:
        assert answer.status == 200  # a GET never meets the lock
    request = urllib.request.Request(f"{captain.url}/api/v2/user/apps/appData/tasks?detached=1", data=b"{}",
                                     headers={"x-captain-auth": token, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 429
    assert caught.value.read() == b"Another operation still in progress... please wait..."
    assert caught.value.headers["Content-Type"].startswith("text/html")


def test_429_retries_end_in_busy_with_the_lock_named(captain, captain_app, repo):
    captain.busy_responses = 10
    client = CapRoverClient(captain.url, app_token=Secret(APP_TOKEN), timeout=10, retry=RetryPolicy(attempts=2),
                            sleep=lambda s: None)
    with pytest.raises(CapRoverBusy, match="another operation in progress"):
        client.deploy_tar("tasks", repo.archive(repo.sha()), repo.sha(), use_app_token=True)


# --- image names with a push registry -----------------------------------------------------------

def test_with_a_push_registry_versions_carry_the_registry_image_name(repo):
    with FakeCapRover(password=PASSWORD, registry=("registry.example.test:5000", "captain")) as captain:
        captain.add_app("tasks")
        sha = repo.sha()
        deployer = login_deployer(captain)
        outcome = deployer.deploy_source(repo.archive(sha), sha)
        assert outcome.image == "registry.example.test:5000/captain/img-captain-tasks:0"
        back = deployer.deploy_image(outcome.image, sha)
        assert back.image == "registry.example.test:5000/captain/img-captain-tasks:1"


def test_rollback_to_a_version_reads_the_registry_image_name_from_capRover(run_cli, repo, write_config, login_env,
                                                                          token_env):
    with FakeCapRover(password=PASSWORD, registry=("registry.example.test:5000", "captain")) as captain:
        captain.add_app("tasks", app_token=APP_TOKEN)
        with_token = write_config(caprover_url=captain.url)
        assert run_cli("--config", with_token, "deploy", env=token_env).exit_code == 0
        captain.finish_builds()
        repo.commit("second", {"index.ts": "console.log('v2')\n"})
        assert run_cli("--config", with_token, "deploy", env=token_env).exit_code == 0
        captain.finish_builds()
        uploads = len(captain.calls_to("/api/v2/user/apps/appData/tasks", "POST"))
        # An app token recorded no image names, and railguard does not guess img-captain-tasks:0.
        guessed = run_cli("--config", with_token, "rollback", "--to", "0", env=token_env)
        assert len(captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")) == uploads
        back = run_cli("--config", write_config(mode="login", caprover_url=captain.url), "rollback", "--to", "0",
                       env=login_env)
        rollback = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert guessed.exit_code == ExitCode.NOT_FOUND
    assert "railguard has no image recorded for version 0" in guessed.stderr
    assert back.exit_code == 0, back.stderr
    assert json.loads(rollback.fields["captainDefinitionContent"])["dockerfileLines"] == [
        "FROM registry.example.test:5000/captain/img-captain-tasks:0"]
    assert captain.deployments[-1].ok


# --- upstream bodies stay out of messages and history -------------------------------------------

class ChattyCapRover(FakeCapRover):
    """A CapRover that fails every deploy with a long, multi-line description echoing the password."""

    def _deploy(self, app, query, call):
        return {"status": 1000, "description": f"Build failed!\nstack: {'x' * 5000}\npassword={PASSWORD}",
                "data": {}}


def test_a_long_description_is_summarised_in_the_message_and_the_history(run_cli, repo, write_config, login_env):
    with ChattyCapRover(password=PASSWORD) as captain:
        captain.add_app("tasks")
        config = write_config(mode="login", caprover_url=captain.url)
        result = run_cli("--config", config, "deploy", "--json", env=login_env)
        listing = run_cli("--config", config, "deploys", "list", "--json", env=login_env)
    error = json.loads(result.stdout)["error"]
    assert error.startswith("CapRover refused POST /api/v2/user/apps/appData/tasks (status 1000): Build failed! stack:")
    assert "\n" not in error and len(error) < len("CapRover refused POST /api/v2/user/apps/appData/tasks "
                                                 "(status 1000): ") + DESCRIPTION_LIMIT + 1
    [record] = json.loads(listing.stdout)["deploys"]
    assert record["detail"] == error and "x" * 200 not in record["detail"]
    assert PASSWORD not in result.stdout + result.stderr + listing.stdout


class HtmlErrorCapRover(FakeCapRover):
    def handle(self, method, raw_path, headers, body):
        return 500, PlainText(f"<html><body>Internal error: token {APP_TOKEN}</body></html>")


def test_a_reply_that_is_not_the_envelope_is_never_quoted():
    with HtmlErrorCapRover() as captain:
        client = CapRoverClient(captain.url, app_token=Secret(APP_TOKEN), timeout=10)
        with pytest.raises(CapRoverError) as caught:
            client.deploy_tar("tasks", b"", "a" * 40, use_app_token=True)
    assert caught.value.message == ("POST /api/v2/user/apps/appData/tasks: HTTP 500 without CapRover's JSON "
                                    "envelope")


# --- the fake's own quirks, as the CLI and the dashboard see them --------------------------------

def test_build_logs_are_a_50_line_ring_padded_from_minus_50(captain, captain_app, repo):
    captain.build_polls = 2
    sha = repo.sha()
    CapRoverClient(captain.url, app_token=Secret(APP_TOKEN), timeout=10).deploy_tar(
        "tasks", repo.archive(sha), sha, use_app_token=True)
    status = login_deployer(captain).client._call("GET", "/api/v2/user/apps/appData/tasks",  # noqa: SLF001
                                                  auth="login").data
    lines, first = status["logs"]["lines"], status["logs"]["firstLineNumber"]
    assert len(lines) == BUILD_LOG_SIZE == 50
    assert first == -50 + 2 and lines[:-2] == [""] * 48 and lines[-1] == "Build started for tasks"


def test_json_bodies_deploy_a_captain_definition_as_the_cli_sends_it(captain, captain_app):
    token = login_deployer(captain).client
    token.login()
    body = json.dumps({"captainDefinitionContent": json.dumps({"schemaVersion": 2, "imageName": "nginx:1"}),
                       "gitHash": ""}).encode()
    request = urllib.request.Request(f"{captain.url}/api/v2/user/apps/appData/tasks?detached=1", data=body,
                                     headers={"x-captain-auth": token._auth_token.reveal(),  # noqa: SLF001
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        assert json.loads(answer.read())["status"] == 101
    captain.finish_builds()
    assert captain_app.versions[-1].image == "nginx:1"


def test_the_commit_reaches_the_image_only_through_a_declared_build_arg():
    declared = "FROM python:3.11\nARG CAPROVER_GIT_COMMIT_SHA\nENV CAPROVER_GIT_COMMIT_SHA=${CAPROVER_GIT_COMMIT_SHA}\n"
    assert image_environment(declared, {"CAPROVER_GIT_COMMIT_SHA": "abc"}) == {"CAPROVER_GIT_COMMIT_SHA": "abc"}
    assert image_environment("FROM python:3.11\nENV PORT=3000\n", {"CAPROVER_GIT_COMMIT_SHA": "abc"}) == {
        "PORT": "3000"}
    # An ARG declared in an earlier stage is out of scope in the final one.
    staged = ("FROM python:3.11 AS build\nARG CAPROVER_GIT_COMMIT_SHA\nFROM python:3.11\n"
              "ENV GIT_COMMIT=$CAPROVER_GIT_COMMIT_SHA\n")
    assert image_environment(staged, {"CAPROVER_GIT_COMMIT_SHA": "abc"}) == {"GIT_COMMIT": ""}
