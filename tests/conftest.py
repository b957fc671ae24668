"""Fixtures every test folder may use. Each capability keeps its own fixtures in its folder's
conftest.py (tests/<capability>/conftest.py)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from railguard.cli import cli

# The git-user fixtures (shared_dir, git_user, git_user_python) serve tests/hook and tests/gate,
# the deploy fixtures (repo, captain) tests/smoke and tests/monitor: registered once here, so no
# test module imports a fixture it then takes as an argument.
pytest_plugins = ["git_user", "secret_hunt", "caprover_deploy"]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., CliResult]:
    """Run ``railguard ARGS`` in-process; returns exit code, stdout and stderr separately.

    The working directory is the test's tmp_path, so no stray ./railguard.toml is picked up.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAILGUARD_CONFIG", raising=False)

    def run(*args: str | Path, env: dict[str, str] | None = None, input: str | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(cli, [str(a) for a in args], env=env, input=input, catch_exceptions=False,
                               prog_name="railguard")
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


def create_tasks_database(path: Path, rows: int = 100, *, wal: bool = True) -> Path:
    """A small database shaped like the app's: tasks plus a counter kept in step with them."""
    connection = sqlite3.connect(path)
    if wal:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.executescript(
        """
        CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX IF NOT EXISTS tasks_done ON tasks(done);
        """
    )
    connection.executemany("INSERT INTO tasks(title) VALUES (?)", [(f"task {i}",) for i in range(rows)])
    connection.commit()
    connection.close()
    return path


def grow_with_random_rows(database: Path, megabytes: int, *, seed: int = 1) -> None:
    """Grow a database with incompressible rows: compression cannot hide the size, and a backup
    takes long enough to be interrupted or overlapped."""
    rng = random.Random(seed)
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB)")
    for _ in range(megabytes * 16):
        connection.execute("INSERT INTO blobs(data) VALUES (?)", (rng.randbytes(64 * 1024),))
    connection.commit()
    connection.close()


@pytest.fixture
def fill_with_random_rows() -> Callable[..., None]:
    return grow_with_random_rows


@pytest.fixture
def tasks_db(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    return create_tasks_database(data / "tasks.db")
