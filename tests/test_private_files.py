"""Every state file railguard creates is private (files 0600, directories 0700), whatever the umask.

Run logs quote what a test printed, the deploy history and the run queue name commits and
errors, copies at a destination and restored databases hold the app's data: like the backups,
nobody but railguard's user may read them. SQLite gives a database's ``-wal`` and ``-shm`` the
main file's permissions (os_unix.c, ``findCreateFileMode``), so those are checked too.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

NOW = datetime(2026, 11, 27, 3, 30, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_gate_run_log_and_its_directory_are_private(tmp_path: Path) -> None:
    from railguard.gate.worker import RunLog

    log = RunLog(tmp_path / "gate" / "logs" / "1.log", [])
    log.line("run 1: tests passed")
    assert (mode(log.path), mode(log.path.parent)) == (0o600, 0o700)


def test_the_gates_mirror_of_the_app_repository_is_private(tmp_path: Path) -> None:
    from railguard.gate.worker import Mirror

    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True)
    mirror = Mirror(tmp_path / "gate" / "mirrors" / "tasks.git", str(origin), dict(os.environ))
    mirror.ensure()
    assert mode(mirror.path) == 0o700 and (mirror.path / "HEAD").is_file()


def test_the_daemon_run_log_database_and_its_wal_are_private(tmp_path: Path) -> None:
    from railguard.daemon.runlog import RunLog

    path = tmp_path / "state" / "daemon.db"
    runlog = RunLog(path)
    try:
        runlog.start("backup", NOW)
        assert {suffix: mode(Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-shm")} == {
            "": 0o600, "-wal": 0o600, "-shm": 0o600}
    finally:
        runlog.close()


def test_the_deploy_history_is_private(tmp_path: Path) -> None:
    from railguard.deploy.state import DeployState

    path = tmp_path / "state" / "deploys.sqlite3"
    state = DeployState(path)
    state.start(app="tasks", caprover_app="tasks", kind="deploy", ref="main", git_hash="0" * 40, now=NOW)
    assert mode(path) == 0o600


def test_the_gates_run_queue_and_its_wal_are_private(tmp_path: Path) -> None:
    from railguard.gate.queue import RunQueue

    path = tmp_path / "gate" / "queue.sqlite3"
    queue = RunQueue(path)
    queue.seen_delivery("delivery-1", now=NOW, outcome="queued")
    assert {suffix: mode(Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-shm")} == {
        "": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_a_copy_at_a_file_destination_is_private(tmp_path: Path) -> None:
    from railguard.destinations.file import FileStore

    directory = tmp_path / "nas"
    directory.mkdir()
    FileStore("nas", directory, attempts=1).upload("tasks-20261127-0330.sqlite3.zst", io.BytesIO(b"a backup"))
    assert mode(directory / "tasks-20261127-0330.sqlite3.zst") == 0o600


def test_a_database_railguard_creates_for_sqlite_is_0600_and_an_existing_one_is_left_alone(tmp_path: Path) -> None:
    from railguard.durable import create_private_database

    create_private_database(tmp_path / "new.sqlite3")
    existing = tmp_path / "existing.sqlite3"
    existing.write_bytes(b"")
    existing.chmod(0o640)
    create_private_database(existing)
    assert (mode(tmp_path / "new.sqlite3"), mode(existing)) == (0o600, 0o640)
