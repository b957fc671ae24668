"""Fixtures for the pre-receive hook tests: a bare "server" repository, a clone to push from,
and a railguard.toml whose test command runs the pushed tree's own stand-in suite."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.gitrepos import TEST_SCRIPT, git


@dataclass
class Push:
    returncode: int
    output: str


@dataclass
class Server:
    bare: Path
    work: Path
    config: Path

    def commit(self, message: str, files: dict[str, str] | None = None, *, work: Path | None = None) -> str:
        where = work or self.work
        for name, text in (files or {}).items():
            (where / name).write_text(text)
        git(where, "add", "--all")
        git(where, "commit", "--quiet", "--allow-empty", "-m", message)
        return git(where, "rev-parse", "HEAD")

    def push(self, *refspecs: str, work: Path | None = None, env: dict[str, str] | None = None) -> Push:
        """``git push`` over the local transport; the hook's output arrives as ``remote:`` lines."""
        done = subprocess.run(["git", "push", "--porcelain", "origin", *refspecs], cwd=work or self.work,
                              capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)
        return Push(done.returncode, done.stdout + done.stderr)

    def head(self, branch: str) -> str | None:
        done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=self.bare,
                              capture_output=True, text=True)
        return done.stdout.strip() or None

    def clone(self, name: str) -> Path:
        path = self.bare.parent / name
        subprocess.run(["git", "clone", "--quiet", str(self.bare), str(path)], check=True)
        _identity(path)
        return path


def _identity(path: Path) -> None:
    for key, value in (("user.name", "Dev"), ("user.email", "dev@example.test"), ("commit.gpgsign", "false")):
        git(path, "config", key, value)


@pytest.fixture
def write_hook_config(tmp_path: Path) -> Callable[..., Path]:
    def write(**deploy: object) -> Path:
        settings: dict[str, object] = {"test_command": ["sh", "run-tests.sh"], "test_timeout": "20s",
                                       "protected_branches": ["main"], **deploy}
        lines = [f'state_dir = "{tmp_path / "state"}"', "", "[apps.tasks]", "", "[apps.tasks.deploy]"]
        for key, value in settings.items():
            lines.append(f"{key} = {_toml(value)}")
        path = tmp_path / "railguard.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def server(tmp_path: Path, write_hook_config: Callable[..., Path]) -> Server:
    """A bare repository with main at a passing commit, no hook yet, and a clone of it."""
    bare = tmp_path / "server" / "app.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(work)], check=True)
    _identity(work)
    git(work, "remote", "add", "origin", str(bare))
    srv = Server(bare=bare, work=work, config=write_hook_config())
    srv.commit("first", {"run-tests.sh": TEST_SCRIPT, "index.ts": "console.log('v1')\n"})
    assert srv.push("main").returncode == 0
    return srv


@pytest.fixture
def hooked(server: Server, run_cli) -> Server:
    """The server with railguard's hook installed (plain git layout)."""
    result = run_cli("--config", server.config, "hook", "install", server.bare)
    assert result.exit_code == 0, result.stderr
    return server
