"""Fixtures for the gate: a real bare repository as the remote (file:// clone URL), the fake
CapRover (which also runs the example app for each build it finishes, so the smoke check meets
a real process), the fake Forgejo status API, an apprise json:// receiver, and the gate itself
under uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pwd
import shutil
import sqlite3
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from example_app import AppProcess
from fakes.caprover import Deployment, FakeApp, FakeCapRover
from fakes.forgejo import FakeForgejo, push_payload, signed_headers
from local_http import JsonReceiver, free_port

from railguard.config import Settings, load_settings
from railguard.deploy.isolation import bwrap_problem
from railguard.gate.app import create_app
from railguard.gate.service import GateService
from railguard.rehearsal.steps import deploy_steps
from railguard.webserver import ConnectionLimits, uvicorn_config

ZERO = "0" * 40

#: Every secret the gate holds; a test greps every log and answer for each of them.
WEBHOOK_SECRET = "gate-webhook-s3cret-never-shown"
FORGEJO_TOKEN = "forgejo-t0ken-never-shown"
APP_TOKEN = "caprover-app-t0ken-never-shown"
PASSWORD = "caprover-pa55word-never-shown"
WEBHOOK_TOKEN = "caprover-webhook-t0ken-never-shown"
CHECK_SECRET = "gate-check-s3cret-never-shown"
SECRETS = [WEBHOOK_SECRET, FORGEJO_TOKEN, APP_TOKEN, PASSWORD, WEBHOOK_TOKEN, CHECK_SECRET]

#: The app's stand-in test suite. It prints its environment (so a test can see the gate's
#: secrets are not in it), fails when FAIL exists, takes a while when SLOW exists, and waits
#: (up to a minute) for the file HOLD names to appear, so a test can decide when it ends.
TEST_SCRIPT = """#!/bin/sh
echo "bun test v1.1 (stand-in)"
env | sort | sed 's/^/env: /'
if [ -f SLOW ]; then sleep "$(cat SLOW)"; fi
if [ -f HOLD ]; then
  i=0
  while [ ! -e "$(cat HOLD)" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
fi
if [ -f FAIL ]; then
  echo "tasks.test.ts: expected 3 tasks, got 2"
  echo "1 fail"
  exit 1
fi
echo "12 pass"
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Remote:
    """A bare repository (what Forgejo stores) and a developer's clone that pushes to it."""

    origin: Path
    work: Path

    @property
    def clone_url(self) -> str:
        return f"file://{self.origin}"

    def commit(self, message: str, files: dict[str, str | None] | None = None) -> str:
        for name, text in (files or {}).items():
            target = self.work / name
            if text is None:
                target.unlink(missing_ok=True)
            else:
                target.write_text(text)
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "--allow-empty", "-m", message)
        return self.sha()

    def push(self, ref: str = "main") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "push", "origin", ref], cwd=self.work, capture_output=True, text=True)

    def sha(self, ref: str = "HEAD") -> str:
        return git(self.work, "rev-parse", ref)

    def archive(self, sha: str) -> bytes:
        return subprocess.run(["git", "archive", "--format=tar", sha], cwd=self.work, check=True,
                              capture_output=True).stdout


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    origin, work = tmp_path / "forgejo" / "dev" / "tasks.git", tmp_path / "dev-clone"
    origin.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], check=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(work)], check=True)
    for key, value in (("user.name", "Dev"), ("user.email", "dev@example.test"), ("commit.gpgsign", "false")):
        git(work, "config", key, value)
    git(work, "remote", "add", "origin", str(origin))
    repo = Remote(origin, work)
    repo.commit("first", {"captain-definition": '{"schemaVersion": 2, "dockerfilePath": "./Dockerfile"}\n',
                          "Dockerfile": "FROM python:3.11-slim\nARG CAPROVER_GIT_COMMIT_SHA\n"
                          "ENV CAPROVER_GIT_COMMIT_SHA=$CAPROVER_GIT_COMMIT_SHA\nCOPY . /app\n",
                          "run-tests.sh": TEST_SCRIPT})
    assert repo.push().returncode == 0
    return repo


class AppRuntime:
    """Runs examples/tasks-app as CapRover would after a build: the built commit in
    CAPROVER_GIT_COMMIT_SHA, always on the same port; a tree holding SMOKE_FAIL starts on a
    database it cannot migrate, so /health answers 503."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.app = AppProcess()
        self.served: list[tuple[str | None, bool]] = []
        directory.mkdir(parents=True, exist_ok=True)
        self.good_db = directory / "tasks.db"
        self.broken_db = directory / "from-a-newer-build.db"
        with sqlite3.connect(self.broken_db) as db:
            db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
            db.execute("INSERT INTO schema_migrations VALUES (3, 'future', '2026-01-01')")

    @property
    def url(self) -> str:
        return self.app.url

    def serve(self, commit: str | None, broken: bool) -> None:
        self.app.run(self.broken_db if broken else self.good_db, commit or "unknown")
        self.served.append((commit, broken))

    def stop(self) -> None:
        self.app.stop()


class RunningCapRover(FakeCapRover):
    """The fake CapRover; every build it finishes successfully is started as a real app process."""

    runtime: AppRuntime | None = None

    def built(self, deployment: Deployment) -> None:
        if not deployment.ok or self.runtime is None:
            return
        # The commit reaches the app the real way: the build arg CAPROVER_GIT_COMMIT_SHA, which
        # the tree's Dockerfile re-exports with ENV (the image's environment); nothing else.
        commit = deployment.environment.get("CAPROVER_GIT_COMMIT_SHA") or "unknown"
        names: set[str] = set()
        if deployment.tree:
            with tarfile.open(fileobj=io.BytesIO(deployment.tree)) as archive:
                names = {member.name.removeprefix("./") for member in archive.getmembers()}
        self.runtime.serve(commit, broken="SMOKE_FAIL" in names)


@pytest.fixture
def captain(tmp_path: Path) -> Iterator[RunningCapRover]:
    fake = RunningCapRover(password=PASSWORD)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
        if fake.runtime is not None:
            fake.runtime.stop()


@pytest.fixture
def captain_app(captain: RunningCapRover, remote: Remote) -> FakeApp:
    return captain.add_app("tasks", app_token=APP_TOKEN, webhook_token=WEBHOOK_TOKEN, repository=remote.origin)


@pytest.fixture
def forgejo() -> Iterator[FakeForgejo]:
    with FakeForgejo(token=FORGEJO_TOKEN, repositories={"dev/tasks"}) as fake:
        yield fake


@pytest.fixture
def inbox() -> Iterator[JsonReceiver]:
    receiver = JsonReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def gate_env(inbox: JsonReceiver) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
            "RAILGUARD_GATE_SECRET": WEBHOOK_SECRET, "FORGEJO_TOKEN": FORGEJO_TOKEN,
            "CAPROVER_APP_TOKEN": APP_TOKEN, "CAPROVER_PASSWORD": PASSWORD, "CAPROVER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "RAILGUARD_GATE_CHECK_SECRET": CHECK_SECRET, "RAILGUARD_NOTIFY_URLS": inbox.url}


def secrets_in_files(gate_env: dict[str, str], directory: Path) -> tuple[dict[str, str], list[Path]]:
    """``gate_env`` as a deployed gate has it: the Forgejo token and the CapRover password in
    ``*_FILE`` files (0600, in ``directory``, made 0700) instead of the environment; and those files."""
    directory.mkdir(mode=0o700)
    secret_files = {"FORGEJO_TOKEN": FORGEJO_TOKEN, "CAPROVER_PASSWORD": PASSWORD}
    for name, value in secret_files.items():
        (directory / name).write_text(value + "\n")
        (directory / name).chmod(0o600)
    env = {key: value for key, value in gate_env.items() if key not in secret_files}
    env.update({f"{name}_FILE": str(directory / name) for name in secret_files})
    return env, [directory / name for name in secret_files]


def bwrap_skip_reason() -> str | None:
    """Why the gate cannot run a bwrap sandbox on this machine, or None."""
    executable = shutil.which("bwrap")
    if executable is None:
        return "bwrap is not installed (.ci/run installs bubblewrap)"
    return bwrap_problem(executable)


def user_skip_reason(python: str | None = None) -> str | None:
    """Why ``isolation = "user:nobody"`` cannot run here, or None; ``python``: an interpreter
    that account must be able to run as well."""
    if os.geteuid() != 0:
        return "user isolation needs the gate to run as root"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "there is no user nobody here"
    if python is not None and not os.access(python, os.X_OK):
        return f"{python} is not installed"
    return None


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


@dataclass
class GateConfig:
    path: Path
    port: int

    def settings(self) -> Settings:
        return load_settings(self.path)


@pytest.fixture
def write_config(tmp_path: Path, captain: RunningCapRover, forgejo: FakeForgejo, remote: Remote,
                 captain_app: FakeApp) -> Callable[..., GateConfig]:
    """railguard.toml for one app ``tasks`` behind the gate. ``smoke=True`` runs the example app
    on every build and points the smoke check at it."""

    def write(*, smoke: bool = False, smoke_wait: str = "20s", gate_app: dict[str, object] | None = None,
              deploy: dict[str, object] | None = None, port: int | None = None,
              gate: dict[str, object] | None = None, database: Path | None = None) -> GateConfig:
        port = port or free_port()
        # No database yet (as before a first deploy): the pre-deploy snapshot is a skipped step.
        lines = [f"state_dir = {_toml(tmp_path / 'state')}", "", "[apps.tasks]",
                 f"database = {_toml(database or tmp_path / 'no-database-yet.db')}"]
        if smoke:
            if captain.runtime is None:
                captain.runtime = AppRuntime(tmp_path / "app-runtime")
            lines.append(f"url = {_toml(captain.runtime.url)}")
        if database is not None:  # then its pre-deploy snapshots go beside the test's other files
            lines += ["", "[apps.tasks.backup]", f"directory = {_toml(tmp_path / 'backups')}"]
        deploy_settings = {"caprover_url": captain.url, "mode": "login", "poll_interval": "0s",
                           "test_command": ["sh", "run-tests.sh"], "test_timeout": "60s", **(deploy or {})}
        lines += ["", "[apps.tasks.deploy]", *(f"{k} = {_toml(v)}" for k, v in deploy_settings.items())]
        lines += ["", "[apps.tasks.smoke]", f"wait = {_toml(smoke_wait)}", 'poll_interval = "0.2s"', 'timeout = "2s"']
        lines += ["", "[gate]", 'host = "127.0.0.1"', f"port = {port}", f"forgejo_url = {_toml(forgejo.url)}",
                  *(f"{k} = {_toml(v)}" for k, v in (gate or {}).items())]
        app_settings = {"repository": "dev/tasks", "clone_url": remote.clone_url, **(gate_app or {})}
        lines += ["", "[gate.apps.tasks]", *(f"{k} = {_toml(v)}" for k, v in app_settings.items())]
        path = tmp_path / "railguard.toml"
        path.write_text("\n".join(lines) + "\n")
        return GateConfig(path, port)

    return write


@dataclass
class Gate:
    """The gate under uvicorn on 127.0.0.1, and a client that talks to it like Forgejo does."""

    service: GateService
    url: str
    remote: Remote
    answers: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, content, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, content, got = exc.code, exc.read(), dict(exc.headers)
        self.answers.append(content.decode("utf-8", "replace"))
        return status, content, got

    def get_json(self, path: str) -> Any:
        status, content, _ = self.request("GET", path, headers={"Accept": "application/json"})
        assert status == 200, content
        return json.loads(content)

    def deliver(self, payload: dict[str, Any] | bytes, *, secret: str = WEBHOOK_SECRET, event: str = "push",
                delivery: str | None = None, which: str = "all",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = signed_headers(body, secret, event=event, delivery=delivery or str(uuid.uuid4()), which=which)
        sent.update(headers or {})
        status, content, _ = self.request("POST", "/hooks/forgejo", body, sent)
        return status, json.loads(content)

    def push_and_deliver(self, before: str | None = None, ref: str = "refs/heads/main") -> tuple[str, int, dict]:
        """``git push`` the work tree's HEAD, then deliver the webhook Forgejo sends for it."""
        old = before or _remote_head(self.remote)
        result = self.remote.push()
        assert result.returncode == 0, result.stderr
        sha = self.remote.sha()
        message = git(self.remote.work, "log", "-1", "--format=%B", sha)
        status, answer = self.deliver(push_payload(ref=ref, before=old, after=sha, clone_url=self.remote.clone_url,
                                                   commits=[{"id": sha, "message": message}]))
        return sha, status, answer

    def runs(self) -> list[dict[str, Any]]:
        return self.get_json("/runs?limit=200")["runs"]

    def wait_for_run(self, run_id: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get_json(f"/runs/{run_id}")
            if run["status"] not in {"queued", "running"}:
                return run
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not finish: {self.get_json(f'/runs/{run_id}')}")

    def wait_idle(self, timeout: float = 90) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            if runs and all(run["status"] not in {"queued", "running"} for run in runs):
                return runs
            time.sleep(0.1)
        raise AssertionError(f"the gate did not finish its runs: {self.runs()}")


def _remote_head(remote: Remote) -> str:
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "refs/heads/main"], cwd=remote.origin,
                          capture_output=True, text=True)
    return done.stdout.strip() or ZERO


@contextlib.contextmanager
def serve_gate(config: GateConfig, env: dict[str, str], remote: Remote,
               steps_for: Callable[..., Any] | None = None) -> Iterator[Gate]:
    """The gate in this process under a real uvicorn server on 127.0.0.1, with the deploy steps
    `railguard gate serve` hands it (cli/gate_cmd.py) unless a test names others."""
    service = GateService(config.settings(), env=env, steps_for=steps_for or deploy_steps)
    server = uvicorn.Server(uvicorn_config(create_app(service), host="127.0.0.1", port=config.port,
                                           limits=ConnectionLimits.from_settings(service.settings.gate),
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="gate-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gate did not start"
        time.sleep(0.02)
    try:
        yield Gate(service, f"http://127.0.0.1:{config.port}", remote)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def start_gate(write_config: Callable[..., GateConfig], gate_env: dict[str, str], remote: Remote,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Gate]]:
    """Start the gate with ``write_config(**options)``; it stops when the test ends. The gate's
    environment is also this process's (as for `railguard gate serve`), since the post-deploy
    smoke step reads the notification URLs from it."""
    for name, value in gate_env.items():
        monkeypatch.setenv(name, value)
    with contextlib.ExitStack() as stack:
        def start(**options: Any) -> Gate:
            return stack.enter_context(serve_gate(write_config(**options), gate_env, remote))

        yield start


@pytest.fixture
def gate_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
