"""Fixtures for the deploy tests: a real git work tree with a bare "origin", the fake
CapRover on 127.0.0.1, and a railguard.toml pointing at both."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.gitrepos import APP_TOKEN, PASSWORD, TEST_SCRIPT, WEBHOOK_TOKEN, Repo, git
from fakes.caprover import FakeApp, FakeCapRover

@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    origin = tmp_path / "origin.git"
    work = tmp_path / "app"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], check=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(work)], check=True)
    for key, value in (("user.name", "Dev"), ("user.email", "dev@example.test"), ("commit.gpgsign", "false"),
                       ("tag.gpgsign", "false")):
        git(work, "config", key, value)
    git(work, "remote", "add", "origin", str(origin))
    repository = Repo(work, origin)
    repository.commit("first", {"Dockerfile": "FROM oven/bun:1\nCOPY . .\nCMD [\"bun\", \"index.ts\"]\n",
                                "index.ts": "console.log('v1')\n", "run-tests.sh": TEST_SCRIPT})
    repository.push("main")
    git(work, "branch", "--quiet", "--set-upstream-to=origin/main", "main")
    return repository


@pytest.fixture
def captain() -> Iterator[FakeCapRover]:
    with FakeCapRover(password=PASSWORD) as fake:
        yield fake


@pytest.fixture
def captain_app(captain: FakeCapRover, repo: Repo) -> FakeApp:
    return captain.add_app("tasks", app_token=APP_TOKEN, webhook_token=WEBHOOK_TOKEN, repository=repo.origin)


@pytest.fixture
def write_config(tmp_path: Path, captain: FakeCapRover, repo: Repo) -> Callable[..., Path]:
    """railguard.toml for the app ``tasks``: CapRover at the fake, the repo, state under tmp_path."""

    def write(*, database: Path | None = None, app_lines: tuple[str, ...] = (), **deploy: object) -> Path:
        """``database``: the app's live database (none by default); ``app_lines``: more TOML at the end."""
        settings: dict[str, object] = {
            "caprover_url": captain.url, "repository": str(repo.path), "test_command": ["sh", "run-tests.sh"],
            "test_timeout": "30s", "poll_interval": "0s", **deploy}
        # No database yet (as before a first deploy): the pre-deploy snapshot is a skipped step.
        lines = [f'state_dir = "{tmp_path / "state"}"', "", "[apps.tasks]",
                 f'database = "{database or tmp_path / "no-database-yet.db"}"', "", "[apps.tasks.deploy]"]
        lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
        lines += ["", "[apps.tasks.backup]", f'directory = "{tmp_path / "backups"}"', *app_lines]
        path = tmp_path / "railguard.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def token_env() -> dict[str, str]:
    return {"CAPROVER_APP_TOKEN": APP_TOKEN}


@pytest.fixture
def login_env() -> dict[str, str]:
    return {"CAPROVER_PASSWORD": PASSWORD}
