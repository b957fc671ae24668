"""The gate keeps taking webhooks while clients hold connections open (issue 14, item 6).

Before: uvicorn closes a connection only after a response, so ~1,100 connections that never
finish their headers used up a gate's 1,024 descriptors (systemd's default soft limit) and every
delivery meanwhile waited in the kernel's backlog until Forgejo gave up (5 s, no retry).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from fakes.forgejo import push_payload, signed_headers
from waiting import wait_until
from gate.conftest import WEBHOOK_SECRET, Remote

#: The gate's soft descriptor limit: systemd's default (DefaultLimitNOFILE=1024:524288).
GATE_NOFILE = 1024
#: Connections that never finish their headers: above the old stall point (~1,100), bounded.
SLOW_CONNECTIONS = 1200
#: Forgejo's webhook delivery timeout (modules/setting/webhook.go: DELIVER_TIMEOUT = 5 seconds).
FORGEJO_DELIVERY_TIMEOUT = 5


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None



@contextlib.contextmanager
def _descriptors_for_this_test(needed: int):
    """This process holds the slow clients' sockets: raise its soft limit for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _closed_by_peer(connection: socket.socket) -> bool:
    try:
        return connection.recv(4096) == b""
    except ConnectionResetError:
        return True


def _deliver(base: str, remote: Remote) -> tuple[int, dict]:
    sha = remote.sha()
    body = json.dumps(push_payload(ref="refs/heads/main", before=remote.sha("HEAD~1"), after=sha,
                                   clone_url=remote.clone_url, commits=[{"id": sha, "message": "slow clients\n"}])
                      ).encode()
    request = urllib.request.Request(f"{base}/hooks/forgejo", data=body, method="POST",
                                     headers=signed_headers(body, WEBHOOK_SECRET, delivery=str(uuid.uuid4())))
    try:
        with urllib.request.urlopen(request, timeout=FORGEJO_DELIVERY_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_webhook_is_accepted_while_more_slow_clients_than_descriptors_hold_connections(
        write_config, gate_env, remote: Remote, tmp_path: Path) -> None:
    remote.commit("a change to deploy")
    assert remote.push().returncode == 0
    config = write_config()
    base = f"http://127.0.0.1:{config.port}"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def systemd_default_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (GATE_NOFILE, hard))

    log = tmp_path / "gate.log"
    with log.open("wb") as output:
        gate = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config.path), "gate", "serve"],
                                env={**gate_env, "PYTHONPATH": os.pathsep.join(sys.path)}, stdout=output,
                                stderr=output, preexec_fn=systemd_default_limit)
    slow: list[socket.socket] = []
    watcher = selectors.DefaultSelector()
    try:
        with _descriptors_for_this_test(2 * SLOW_CONNECTIONS + 256):
            wait_until(lambda: _get_json(f"{base}/healthz"), "the gate to serve")
            for _ in range(SLOW_CONNECTIONS):
                connection = socket.create_connection(("127.0.0.1", config.port), timeout=30)
                # Half a webhook's headers, then nothing: a client that never finishes them.
                connection.sendall(b"POST /hooks/forgejo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forgejo-Event: push\r\n")
                slow.append(connection)

            started = time.monotonic()
            status, answer = _deliver(base, remote)
            assert status == 202 and answer["queued"] is True, answer
            assert time.monotonic() - started < FORGEJO_DELIVERY_TIMEOUT

            # Every slow connection is closed by the gate: the oldest to make room, the rest once
            # their header timeout (10 s by default) has passed.
            for connection in slow:
                connection.setblocking(False)
                watcher.register(connection, selectors.EVENT_READ)
            open_ones = set(slow)
            deadline = time.monotonic() + 90
            while open_ones and time.monotonic() < deadline:
                for key, _ in watcher.select(timeout=1):
                    if _closed_by_peer(key.fileobj):
                        watcher.unregister(key.fileobj)
                        open_ones.discard(key.fileobj)
            assert not open_ones, f"{len(open_ones)} slow connections are still open"
            assert gate.poll() is None, log.read_text()
    finally:
        watcher.close()
        for connection in slow:
            connection.close()
        gate.terminate()
        gate.wait(timeout=60)
    text = log.read_text()
    assert "Too many open files" not in text and "Traceback" not in text, text


def test_a_run_id_beyond_64_bits_is_not_found(start_gate) -> None:
    gate = start_gate()
    for run_id in ("99999999999999999999", str(2**63), str(-(2**63) - 1)):
        status, content, _ = gate.request("GET", f"/runs/{run_id}", headers={"Accept": "application/json"})
        assert status == 404, content
        assert json.loads(content) == {"ok": False, "error": f"no run {run_id}"}
