"""The situations the runbook's blocks are written for (``given=NAME``), each made real in the
sandbox with railguard itself, and what the test does in place of production-only steps
(``sandbox=ACTION``). Each situation checks the state it promises before the block runs."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

from railguard.backup.engine import take_backup
from railguard.config import load_settings
from railguard.logfmt import read_lines

from runbook.sandbox import Sandbox

#: Bigger than SQLite's -shm file (32 KiB) and backup.log, smaller than a copy of the database:
#: the backup's own write fails, as on a full disk.
BACKUP_FAILS_ABOVE = 48 * 1024


def _check(result, expected: int, what: str) -> None:
    assert result.returncode == expected, (
        f"{what}: exit {result.returncode}, expected {expected}\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def failing_commit(sandbox: Sandbox) -> Iterator[None]:
    before = sandbox.remote_head()
    sandbox.commit("breaks a test", {"FAIL": "tasks.test.ts fails\n"})
    yield
    assert sandbox.remote_head() == before, "a rejected push must not move main"


@contextlib.contextmanager
def new_commit(sandbox: Sandbox) -> Iterator[None]:
    sha = sandbox.commit("a fix", {"FAIL": None, "SMOKE_FAIL": None, "CHANGELOG": "fixed\n"})
    yield
    assert sandbox.remote_head() == sha
    assert sandbox.captain.deployments[-1].git_hash == sha, "railguard deploy must build the pushed commit"


@contextlib.contextmanager
def gate_running(sandbox: Sandbox) -> Iterator[None]:
    sandbox.start_gate()
    sha = sandbox.commit("a change the gate tests", {"CHANGELOG": "through the gate\n"})
    try:
        yield
        runs = sandbox.wait_for_gate()
        assert runs[0]["commit_sha"] == sha and runs[0]["status"] == "deployed", runs[0]
        assert sandbox.production.commit == sha
    finally:
        sandbox.stop_gate()


@contextlib.contextmanager
def backup_failed(sandbox: Sandbox) -> Iterator[None]:
    assert sandbox.production.database.stat().st_size > BACKUP_FAILS_ABOVE
    result = sandbox.railguard("backup", max_file_size=BACKUP_FAILS_ABOVE)
    assert result.returncode not in (0, 1), result.stdout + result.stderr
    assert read_lines(sandbox.backups / "backup.log")[-1]["result"] == "failed"
    yield


@contextlib.contextmanager
def destination_down(sandbox: Sandbox) -> Iterator[None]:
    sandbox.nas.rename(sandbox.nas.with_name("nas-unmounted"))
    sandbox.nas.write_text("not a directory: the disk is not mounted\n")
    _check(sandbox.railguard("backup"), 1, "a backup whose copy fails is a warning")
    yield


def destination_back(sandbox: Sandbox) -> None:
    sandbox.nas.unlink()
    sandbox.nas.with_name("nas-unmounted").rename(sandbox.nas)


@contextlib.contextmanager
def drill_failed(sandbox: Sandbox) -> Iterator[None]:
    # Too short for the app to answer /health: a real drill that fails at its health step.
    _check(sandbox.railguard("drill", "--start-timeout", "0.01s"), 7, "a drill that fails")
    assert read_lines(sandbox.backups / "drill.log")[-1]["result"] == "failed"
    yield


@contextlib.contextmanager
def deploy_failed(sandbox: Sandbox) -> Iterator[None]:
    sandbox.commit("a change whose build fails", {"CHANGELOG": "build fails\n"})
    running = sandbox.production.commit
    sandbox.captain.fail_next_builds = 1
    _check(sandbox.railguard("deploy"), 2, "a deploy whose build fails")
    assert sandbox.production.commit == running, "a failed build leaves the previous version running"
    yield


@contextlib.contextmanager
def smoke_failed(sandbox: Sandbox) -> Iterator[None]:
    good = sandbox.production.commit
    sandbox.commit("a change the database cannot take", {"SMOKE_FAIL": "x\n"})
    _check(sandbox.railguard("deploy"), 7, "a deploy whose smoke check fails")
    yield
    assert sandbox.production.commit == good and not sandbox.production.broken, "rolled back to the good commit"


@contextlib.contextmanager
def app_down(sandbox: Sandbox) -> Iterator[None]:
    sandbox.production.stop()
    for _ in range(3):
        _check(sandbox.railguard("monitor", "--once"), 1, "a monitor round with the app down")
    yield


@contextlib.contextmanager
def stale_backup(sandbox: Sandbox) -> Iterator[None]:
    """The daemon stopped 30 hours ago: the newest backup is one taken then (by the library,
    with its clock 30 h back), and none since."""
    aside = sandbox.root / "backups-set-aside"
    aside.mkdir()
    for path in list(sandbox.backups.glob("tasks-*")):
        shutil.move(path, aside / path.name)
    app = load_settings(sandbox.config).apps["tasks"]
    take_backup(app.database, app.backup, now=datetime.now(timezone.utc) - timedelta(hours=30), tz="UTC")
    yield


def stop_app(sandbox: Sandbox) -> None:
    sandbox.production.stop()


def start_app(sandbox: Sandbox) -> None:
    sandbox.production.start(sandbox.production.commit)


def monitor_checks(sandbox: Sandbox) -> None:
    """What the running monitor does within two intervals: two good checks, RECOVERED."""
    for _ in range(2):
        _check(sandbox.railguard("monitor", "--once"), 0, "a monitor round with the app back")


GIVEN: dict[str, Callable[[Sandbox], contextlib.AbstractContextManager[None]]] = {
    "failing-commit": failing_commit, "new-commit": new_commit, "gate-running": gate_running,
    "backup-failed": backup_failed, "destination-down": destination_down, "drill-failed": drill_failed,
    "deploy-failed": deploy_failed, "smoke-failed": smoke_failed, "app-down": app_down,
    "stale-backup": stale_backup,
}

SANDBOX_ACTIONS: dict[str, Callable[[Sandbox], None]] = {
    "stop-app": stop_app, "start-app": start_app, "monitor-checks": monitor_checks,
    "destination-back": destination_back,
}
