"""Helpers shared by the destination tests' fixtures and the tests themselves."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time

MOTO_KEY_ID = "railguard-test-key"
#: Distinctive so the "secrets never shown" tests can grep for it.
MOTO_SECRET = "S3CRET-moto-7f3a9c"
SFTP_USER = "railguard"
SFTP_PASSWORD = "sftp-S3CRET-41b2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def obscure(password: str) -> str:
    """rclone keeps passwords obscured in its config; the environment form takes the same."""
    return subprocess.run(["rclone", "obscure", password], capture_output=True, text=True, check=True).stdout.strip()
