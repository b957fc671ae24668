"""A test suite stops when the service running it shuts down (the gate on SIGTERM)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from railguard.deploy.suite import run_suite


def test_a_cancelled_suite_is_stopped_with_its_children_and_gives_no_verdict(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "suite.sh"
    script.write_text(f"sleep 300 &\necho $! > {pid_file}\nwait\n")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()

    started = time.monotonic()
    result = run_suite(["sh", str(script)], cwd=tmp_path, timeout=300, cancel=cancel)

    assert time.monotonic() - started < 30
    assert result.cancelled and not result.timed_out and not result.passed
    assert "railguard is shutting down" in result.summary()
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the suite's child outlived the cancelled suite")


def test_without_cancel_a_timeout_still_stops_the_suite(tmp_path: Path):
    result = run_suite(["sleep", "30"], cwd=tmp_path, timeout=0.5)
    assert result.timed_out and not result.cancelled and not result.passed
