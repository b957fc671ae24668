"""``user:NAME`` isolation leaves nothing of a run behind (railguard.deploy.reaper).

A pushed suite that double-forks a ``setsid`` child leaves the process group that railguard
stops; as the isolation's user it would live on beside the next run, which is handed to the
same user. Real processes, a real account (nobody), as root like a gate that switches users.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from railguard.deploy.isolation import Isolation
from railguard.deploy.suite import run_suite

from gate.conftest import user_skip_reason

#: Starts a sleeper in a session of its own, waits until it has written its pid, then exits 3.
ESCAPE = ("setsid sh -c 'echo $$ > escapee.tmp && mv escapee.tmp escapee.pid && exec sleep 600' &\n"
          "while [ ! -s escapee.pid ]; do sleep 0.05; done\n")


pytestmark = pytest.mark.skipif(bool(user_skip_reason()), reason=user_skip_reason() or "")


@pytest.fixture
def nobody() -> Isolation:
    account = pwd.getpwnam("nobody")
    return Isolation("user", user="nobody", uid=account.pw_uid, gid=account.pw_gid)


@pytest.fixture
def run_root() -> Iterator[Path]:
    """The run's private directory where the account can reach it (pytest's tmp_path is under a 0700 root directory)."""
    root = Path(tempfile.mkdtemp(prefix="railguard-reaper-test-", dir="/tmp"))
    escapee = root / "escapee.pid"
    try:
        yield root
    finally:
        with contextlib.suppress(OSError, ValueError):  # never leave the sleeper behind, fix or no fix
            os.kill(int(escapee.read_text()), signal.SIGKILL)
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if not path.is_dir() or path.is_symlink() else path.rmdir()
        root.rmdir()


def _alive_as(pid: int, uid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z")


def test_a_process_that_left_the_group_with_setsid_does_not_outlive_the_suite(nobody: Isolation,
                                                                               run_root: Path) -> None:
    (run_root / "suite.sh").write_text(ESCAPE + "id -u\nexit 3\n")
    result = run_suite(["sh", "suite.sh"], cwd=run_root, root=run_root, timeout=120, isolation=nobody)
    assert result.returncode == 3, result.tail  # the suite's own status, through the reaper
    assert result.tail[-1] == str(nobody.uid)  # it ran as the account
    escapee = int((run_root / "escapee.pid").read_text())
    assert not _alive_as(escapee, nobody.uid or 0), "the setsid child outlived the suite"


def test_a_suite_stopped_by_its_caller_takes_what_left_its_group_with_it(nobody: Isolation,
                                                                        run_root: Path) -> None:
    """Stopped (the gate shutting down; a timeout takes the same path) while it ignores SIGTERM."""
    (run_root / "suite.sh").write_text(ESCAPE + "trap '' TERM\ntouch ready\nwhile :; do sleep 1; done\n")
    cancel = threading.Event()

    def cancel_once_ready() -> None:
        deadline = time.monotonic() + 120
        while not (run_root / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        cancel.set()

    threading.Thread(target=cancel_once_ready, daemon=True).start()
    result = run_suite(["sh", "suite.sh"], cwd=run_root, root=run_root, timeout=300, isolation=nobody,
                       cancel=cancel)
    assert result.cancelled and not result.passed
    escapee = int((run_root / "escapee.pid").read_text())
    assert not _alive_as(escapee, nobody.uid or 0), "the setsid child outlived the stopped suite"
