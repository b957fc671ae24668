"""A pushed commit that hunts for the gate's secrets finds none (issue 14, item 2).

The gate runs as the real `railguard gate serve` process, with its secrets in its environment
and in ``*_FILE`` files, as it is deployed. The pushed "test suite" (tests/secret_hunt.py) reads
the environ of every ancestor process, the secret files, its environment and the state
directory, and publishes what it found base64-encoded in its output and in a file outside its
tree. No secret may appear, in any form, in the run log, the run page, /runs, the commit
statuses, the notification, the exfiltration file or the gate's own log. With ``isolation =
"none"`` the same suite does get the secrets: the attack is real.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fakes.forgejo import push_payload, signed_headers
from secret_hunt import decoded_loot, hunting_suite, leaks
from waiting import wait_until

from gate.conftest import (SECRETS, WEBHOOK_SECRET, Remote, bwrap_skip_reason, secrets_in_files, serve_gate,
                           user_skip_reason)

from railguard.deploy.isolation import IsolationUnavailable, resolve_isolation
from railguard.errors import ConfigError
from railguard.gate.service import GateService

READ_TOKEN = "gate-read-t0ken-never-shown"
ALL_SECRETS = [*SECRETS, READ_TOKEN]


def _request(url: str, token: str | None = READ_TOKEN, accept: str = "application/json") -> tuple[int, str]:
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""



@pytest.mark.parametrize("isolation", [None, "bwrap", "user:nobody", "none"],
                         ids=["default", "bwrap", "user-nobody", "none-the-attack-works"])
def test_a_pushed_suite_hunting_for_the_gates_secrets_finds_none(
        isolation, write_config, gate_env, remote: Remote, captain, forgejo, inbox, exfil, tmp_path: Path) -> None:
    if isolation == "bwrap" and (reason := bwrap_skip_reason()):
        print(f"skipped: {reason}")
        pytest.skip(reason)
    if isolation == "user:nobody" and (reason := user_skip_reason()):
        print(f"skipped: {reason}")
        pytest.skip(reason)
    env, secret_files = secrets_in_files(gate_env, tmp_path / "secrets")
    env.update(RAILGUARD_GATE_TOKEN=READ_TOKEN, PYTHONPATH=os.pathsep.join(sys.path))
    suite = hunting_suite(secret_files=secret_files, state_dir=tmp_path / "state", exfil=exfil)
    sha = remote.commit("innocent refactor", {"run-tests.sh": suite})
    before = remote.sha("HEAD~1")
    config = write_config(gate={"isolation": isolation} if isolation else None)
    base = f"http://127.0.0.1:{config.port}"
    log = tmp_path / "gate.log"
    with open(log, "ab") as handle:
        gate = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config.path), "gate", "serve"],
                                env=env, stdout=handle, stderr=handle)
    try:
        wait_until(lambda: _request(f"{base}/healthz")[0] == 200, "the gate to serve", timeout=90)
        assert remote.push().returncode == 0
        body = json.dumps(push_payload(ref="refs/heads/main", before=before, after=sha,
                                       clone_url=remote.clone_url)).encode()
        request = urllib.request.Request(f"{base}/hooks/forgejo", data=body, method="POST",
                                         headers=signed_headers(body, WEBHOOK_SECRET))
        with urllib.request.urlopen(request, timeout=10) as response:
            run_id = json.loads(response.read())["run"]
        run = wait_until(lambda: (r := json.loads(_request(f"{base}/runs/{run_id}")[1] or "{}"))
                         and r.get("status") not in {None, "queued", "running"} and r, "the run to finish",
                         timeout=90)
        wait_until(lambda: inbox.messages, "the deploy-failed notification", timeout=90)
        page = _request(f"{base}/runs/{run_id}", accept="text/html")[1]
        runs = _request(f"{base}/runs")[1]
    finally:
        gate.send_signal(signal.SIGTERM)
        gate.wait(timeout=30)

    loot = exfil.read_text() if exfil.exists() else ""
    if isolation == "none":
        # Without isolation the suite reads the gate's environ and the secret files: the attack is real.
        assert set(leaks(loot, ALL_SECRETS)) == set(ALL_SECRETS), decoded_loot(f"attack: loot {loot}")
        assert "NOT ISOLATED" in run["log"] and "tests not isolated" in forgejo.statuses_for(sha)[-1].description
        return
    assert run["status"] == "failed", run
    found = decoded_loot(run["log"])
    assert "own environment:" in found, found  # the suite ran and reported
    surfaces = {
        "run log": run["log"], "run page": page, "/runs": runs, "exfiltration file": loot,
        "commit statuses": json.dumps([(s.state, s.description, s.target_url) for s in forgejo.statuses_for(sha)]),
        "notifications": json.dumps(inbox.messages), "gate log": log.read_text(), "decoded loot": found,
    }
    assert {where: leaks(text, ALL_SECRETS) for where, text in surfaces.items()} == \
        {where: [] for where in surfaces}
    assert "queue.sqlite3" not in found, found  # the state directory was out of reach
    assert "clean environment; isolated: " in run["log"], run["log"]


def test_the_default_isolation_is_in_force_on_this_machine() -> None:
    """CI is this kind of machine: the default (auto) must isolate here, or the default path of
    the attack test above proves nothing."""
    isolation = resolve_isolation("auto")
    assert isolation.isolated, isolation.describe()


def test_runs_and_logs_need_the_read_token_when_one_is_set(write_config, gate_env, remote: Remote) -> None:
    with serve_gate(write_config(), {**gate_env, "RAILGUARD_GATE_TOKEN": READ_TOKEN}, remote) as gate:
        basic = base64.b64encode(f"anyone:{READ_TOKEN}".encode()).decode()
        for path in ("/runs", "/runs/1", "/runs?format=html"):
            status, _, headers = gate.request("GET", path)
            challenge = {key.lower(): value for key, value in headers.items()}.get("www-authenticate")
            assert (status, challenge) == (401, 'Basic realm="railguard gate", charset="UTF-8"')
            assert gate.request("GET", path, headers={"Authorization": "Bearer wrong-token"})[0] == 401
        assert gate.request("GET", "/runs", headers={"Authorization": f"Bearer {READ_TOKEN}"})[0] == 200
        assert gate.request("GET", "/runs", headers={"Authorization": f"Basic {basic}"})[0] == 200
        assert gate.request("GET", "/healthz")[0] == 200


def test_a_gate_on_a_public_address_refuses_to_start_without_a_read_token(write_config, gate_env) -> None:
    settings = write_config().settings()
    settings.gate.host = "0.0.0.0"
    with pytest.raises(ConfigError) as refused:
        GateService(settings, env=gate_env)
    assert refused.value.message == ("gate.host = '0.0.0.0' is not a loopback address and $RAILGUARD_GATE_TOKEN "
                                     "is not set: anyone who reaches the gate could read every run and its test log")
    assert GateService(settings, env={**gate_env, "RAILGUARD_GATE_TOKEN": READ_TOKEN}).read_token is not None


def test_user_isolation_refuses_an_account_that_can_read_a_secret_file(tmp_path: Path) -> None:
    if reason := user_skip_reason():
        print(f"skipped: {reason}")
        pytest.skip(reason)
    shared = Path(tempfile.mkdtemp(prefix="railguard-readable-"))
    try:
        shared.chmod(0o755)
        (shared / "token").write_text("s3cret")
        (shared / "token").chmod(0o644)
        with pytest.raises(IsolationUnavailable) as refused:
            resolve_isolation("user:nobody", private=[tmp_path, shared / "token"])
        assert refused.value.message == f"gate.isolation: user nobody can read {shared / 'token'}"
        (shared / "token").chmod(0o600)
        assert resolve_isolation("user:nobody", private=[tmp_path, shared / "token"]).mode == "user"
    finally:
        shutil.rmtree(shared)
