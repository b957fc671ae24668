"""Conformance: the official CapRover CLI (npm ``caprover``) deploys against the fake CapRover.

The fake must follow the real server closely enough for CapRover's own client: a tar with an
app token, a branch with a password while the CLI polls the build log, an image name (a JSON
body), and a login with a two-factor code. Any failure here is a bug in the fake.

The CLI drops the port from the machine URL and talks to ``captain.<host>`` on port 80
(caprover-cli src/utils/Utils.ts ``cleanAdminDomainUrl``), so the fake and the CLI run in a
private network and mount namespace (``unshare --net --mount``, iproute2's ``ip``), where the
fake binds 127.0.0.1:80 and a private /etc/hosts names ``captain.localhost``: nothing else on
the machine is touched. .ci/run installs the CLI (CAPROVER_CLI_VERSION); when it is missing and
npm is there, the fixture installs that version itself. Only a machine without node/npm skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.gitrepos import git

ROOT = Path(__file__).resolve().parents[2]
SESSION = Path(__file__).with_name("caprover_cli_session.py")
#: The CLI version the fake is checked against; .ci/run installs the same one.
CAPROVER_CLI_VERSION = "2.3.1"
CLI_DIR = Path(os.environ.get("RAILGUARD_CAPROVER_CLI_DIR", "/opt/railguard-ci/caprover-cli"))

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def caprover_cli() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the CapRover CLI conformance tests (.ci/run installs nodejs)")
    cli = CLI_DIR / "node_modules" / ".bin" / "caprover"
    if not cli.exists():
        result = subprocess.run(["npm", "install", "--prefix", str(CLI_DIR), "--no-audit", "--no-fund",
                                 f"caprover@{CAPROVER_CLI_VERSION}"], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"npm install caprover@{CAPROVER_CLI_VERSION} failed: {result.stderr[-2000:]}"
    installed = json.loads((CLI_DIR / "node_modules" / "caprover" / "package.json").read_text())["version"]
    assert installed == CAPROVER_CLI_VERSION, f"{CLI_DIR} holds caprover {installed}, not {CAPROVER_CLI_VERSION}"
    return cli


@pytest.fixture(scope="module")
def session(caprover_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run of caprover_cli_session.py in its own namespace; every test reads its report."""
    workdir = tmp_path_factory.mktemp("caprover-cli")
    repo = workdir / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    for key, value in (("user.name", "Dev"), ("user.email", "dev@example.test"), ("commit.gpgsign", "false")):
        git(repo, "config", key, value)
    (repo / "captain-definition").write_text('{"schemaVersion": 2, "dockerfilePath": "./Dockerfile"}\n')
    (repo / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY . /app\nARG CAPROVER_GIT_COMMIT_SHA\n"
                                     "ENV CAPROVER_GIT_COMMIT_SHA=${CAPROVER_GIT_COMMIT_SHA}\n")
    (repo / "app.py").write_text("print('tasks')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "the app")
    (workdir / "source.tar").write_bytes(subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=repo,
                                                        check=True, capture_output=True).stdout)
    hosts = workdir / "hosts"
    hosts.write_text("127.0.0.1 localhost captain.localhost\n")
    inner = (f"ip link set lo up && mount --bind {hosts} /etc/hosts && "
             f"exec {sys.executable} {SESSION} {caprover_cli} {workdir}")
    namespaces = ["unshare", "--net", "--mount"] if os.geteuid() == 0 else [
        "unshare", "--user", "--map-root-user", "--net", "--mount"]
    result = subprocess.run([*namespaces, "sh", "-c", inner], capture_output=True, text=True, timeout=540,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
    assert result.returncode == 0, f"the CLI session failed ({result.returncode}): {result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    report["sha"] = git(repo, "rev-parse", "HEAD")
    return report


def output(run: dict) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", run["stdout"] + run["stderr"])


def test_the_cli_deploys_a_tar_with_an_app_token(session):
    run = session["tar_with_app_token"]
    assert run["exit"] == 0, output(run)
    assert "Build logs aren't retrieved when using app token" in output(run)
    [upload] = run["calls"]
    assert (upload["method"], upload["path"], upload["query"]) == ("POST", "/api/v2/user/apps/appData/tasks",
                                                                   {"detached": "1"})
    assert upload["content_type"].startswith("multipart/form-data") and upload["files"] == ["sourceFile"]
    assert "x-captain-app-token" in upload["headers"] and upload["status"] == 101
    assert session["deployments"]["tasks"][0]["ok"] is True


def test_the_cli_deploys_a_branch_with_a_password_and_follows_the_build_log(session):
    run = session["branch_with_password"]
    text = output(run)
    assert run["exit"] == 0, text
    assert "Deployed successfully tasks" in text
    # The padded 50-line ring starting at -50 (BuildLog.ts) is what the CLI expects on its first
    # fetch; anything else makes it print [[ TRUNCATED ]] (DeployHelper.onLogRetrieved).
    assert "[[ TRUNCATED ]]" not in text
    assert "Build started for tasks" in text and "Build has finished successfully!" in text
    paths = [(c["method"], c["path"]) for c in run["calls"]]
    assert paths[:3] == [("POST", "/api/v2/login"), ("GET", "/api/v2/user/apps/appDefinitions"),
                         ("POST", "/api/v2/user/apps/appData/tasks")]
    assert paths[3:] and set(paths[3:]) == {("GET", "/api/v2/user/apps/appData/tasks")}
    upload = run["calls"][2]
    assert upload["fields"]["gitHash"] == session["sha"]
    built = session["deployments"]["tasks"][1]
    assert (built["ok"], built["git_hash"]) == (True, session["sha"])
    # The commit reached the image through the build arg the Dockerfile re-exports.
    assert built["environment"]["CAPROVER_GIT_COMMIT_SHA"] == session["sha"]


def test_the_cli_deploys_an_image_name_as_a_json_body(session):
    run = session["image_with_password"]
    assert run["exit"] == 0, output(run)
    upload = next(c for c in run["calls"] if c["method"] == "POST" and "appData" in c["path"])
    assert upload["content_type"].startswith("application/json")
    assert json.loads(upload["fields"]["captainDefinitionContent"]) == {"schemaVersion": 2, "imageName": "nginx:1.27"}
    assert session["versions"]["tasks"][-1]["deployedImageName"] == "nginx:1.27"


def test_the_cli_logs_in_with_the_two_factor_code_from_CAPROVER_OTP_TOKEN(session):
    run = session["tar_with_password_and_otp"]
    assert run["exit"] == 0, output(run)
    login = run["calls"][0]
    assert json.loads(login["body"]) == {"password": "captain-cli-password", "otpToken": "314159"}
    assert login["status"] == 100


def test_ci_installs_the_cli_version_the_fake_is_checked_against():
    assert f"caprover@{CAPROVER_CLI_VERSION}" in (ROOT / ".ci" / "run").read_text()
