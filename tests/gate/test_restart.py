"""The gate as the real `railguard gate serve` process, killed in the middle of a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from fakes.forgejo import push_payload, signed_headers
from waiting import wait_until
from gate.conftest import SECRETS, WEBHOOK_SECRET, Remote, RunningCapRover


def _start(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "ab")
    process = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config), "gate", "serve"],
                               env=env, stdout=handle, stderr=handle)
    handle.close()
    return process


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError):
        return None



def test_a_run_cut_short_by_a_killed_gate_is_queued_again_and_finished_after_restart(
        write_config, gate_env, remote: Remote, captain: RunningCapRover, forgejo, tmp_path: Path) -> None:
    marker = tmp_path / "first-suite.pid"
    # The first run of this suite hangs (and says where it is); the second passes at once.
    suite = (f'#!/bin/sh\necho "bun test v1.1 (stand-in)"\n'
             f'if [ ! -e "{marker}" ]; then echo $$ > "{marker}"; sleep 120; fi\necho "12 pass"\n')
    sha = remote.commit("slow suite", {"run-tests.sh": suite})
    before = remote.sha("HEAD~1")
    # The suite keeps its state outside its tree (the marker) to hang only the first time: a
    # sandbox would hide that path, so this test of the restart runs without one.
    config = write_config(gate={"isolation": "none"})
    base = f"http://127.0.0.1:{config.port}"
    log = tmp_path / "gate.log"
    env = {**gate_env, "PYTHONPATH": os.pathsep.join(sys.path)}
    gate = _start(config.path, env, log)
    orphan = None
    try:
        wait_until(lambda: _get(f"{base}/healthz"), "the gate to serve")
        assert remote.push().returncode == 0
        body = json.dumps(push_payload(ref="refs/heads/main", before=before, after=sha,
                                       clone_url=remote.clone_url)).encode()
        request = urllib.request.Request(f"{base}/hooks/forgejo", data=body, method="POST",
                                         headers=signed_headers(body, WEBHOOK_SECRET))
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
        orphan = int(wait_until(lambda: marker.exists() and marker.read_text().strip(), "the suite to start"))

        gate.send_signal(signal.SIGKILL)
        gate.wait(timeout=10)
        os.killpg(orphan, signal.SIGKILL)  # the suite runs in a session of its own; kill -9 left it behind
        orphan = None
        gate = _start(config.path, env, log)

        runs = wait_until(lambda: (r := _get(f"{base}/runs")) and len(r["runs"]) == 2
                          and r["runs"][0]["status"] not in {"queued", "running"} and r["runs"], "the retried run")
    finally:
        if gate.poll() is None:
            gate.send_signal(signal.SIGTERM)
            gate.wait(timeout=30)
        if orphan is not None:
            os.killpg(orphan, signal.SIGKILL)

    retried, interrupted = runs
    assert (interrupted["status"], interrupted["commit_sha"]) == ("interrupted", sha)
    assert f"queued again as run {retried['id']}" in interrupted["summary"]
    assert (retried["status"], retried["commit_sha"], retried["retry_of"]) == ("deployed", sha, interrupted["id"])
    assert [call.fields["gitHash"] for call in captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")] == [sha]
    assert forgejo.states_for(sha) == ["pending", "pending", "success"]
    assert gate.returncode == 0
    text = log.read_text()
    assert "run 1 was interrupted by a restart; queued again as run 2" in text
    assert not [secret for secret in SECRETS if secret in text]
