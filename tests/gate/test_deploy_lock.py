"""The gate and the CLI deploy through the same locked pipeline: a hand ``railguard rollback``
while the gate is deploying is refused (exit 5) before it writes a history row, so the deploy
history never interleaves two flows. Real gate under uvicorn, the CLI as a real process, the
fake CapRover on 127.0.0.1; synchronised on events, never on sleeps."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from gate.conftest import Remote, RunningCapRover

from railguard.deploy.state import DeployState, state_path
from railguard.errors import ExitCode

UPLOAD = "/api/v2/user/apps/appData/tasks"


def hold_the_next_upload(captain: RunningCapRover) -> tuple[threading.Event, threading.Event]:
    """Make the fake keep the next source upload waiting (a slow link to CapRover) until released;
    every other request is answered at once. Returns (arrived, release)."""
    arrived, release = threading.Event(), threading.Event()
    answer = captain.handle

    def handle(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method == "POST" and path.split("?")[0] == UPLOAD and not arrived.is_set():
            arrived.set()
            assert release.wait(timeout=120), "the test never released the held upload"
        return answer(method, path, headers, body)

    captain.handle = handle  # type: ignore[method-assign]  # the fake's server calls fake.handle
    return arrived, release


def test_a_cli_rollback_during_a_gate_deploy_is_refused_and_the_history_stays_in_order(
        start_gate, gate_env: dict[str, str], remote: Remote, captain: RunningCapRover, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gate = start_gate()
    remote.commit("first deploy through the gate")
    _, _, first = gate.push_and_deliver()
    assert gate.wait_for_run(first["run"])["status"] == "deployed"

    arrived, release = hold_the_next_upload(captain)
    sha = remote.commit("second deploy, slow upload")
    _, _, second = gate.push_and_deliver()
    assert arrived.wait(timeout=90), "the gate never uploaded the second commit"
    try:
        # The gate's deploy is in flight: its history row is open. A hand rollback to version 0 now:
        rolled = subprocess.run([sys.executable, "-m", "railguard", "--config", str(tmp_path / "railguard.toml"),
                                 "rollback", "--to", "0"], capture_output=True, text=True, timeout=120,
                                cwd=tmp_path, env={**os.environ, **gate_env})
    finally:
        release.set()
    run = gate.wait_for_run(second["run"])

    assert rolled.returncode == ExitCode.BUSY, rolled.stdout + rolled.stderr
    assert rolled.stderr.splitlines()[0] == "error: another railguard run is already working on a deploy of tasks"
    assert run["status"] == "deployed", run
    settings = gate.service.settings
    history = DeployState(state_path(settings.state_dir, settings.apps["tasks"].deploy.state_file)).history("tasks")
    oldest_first = sorted(history, key=lambda record: record.id)
    assert [(r.kind, r.git_hash, r.result) for r in oldest_first][-1] == ("deploy", sha, "ok")
    assert not any(r.kind == "rollback" for r in history)
    # Not interleaved: every row finished before the next one started.
    for earlier, later in zip(oldest_first, oldest_first[1:]):
        assert earlier.finished_at is not None and earlier.finished_at <= later.started_at, (earlier, later)
