"""The example app (examples/tasks-app) as a real process on a fixed 127.0.0.1 port, for the
tests that restart it the way a deploy would (the gate's and the runbook's fake CapRover)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from local_http import free_port

TASKS_APP = Path(__file__).resolve().parents[1] / "examples" / "tasks-app" / "app.py"


class AppProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, database: Path, commit: str) -> None:
        """(Re)start the app on ``database`` serving ``commit``; return once it answers."""
        self.stop()
        env = {"PATH": os.environ.get("PATH", ""), "PORT": str(self.port), "HOST": "127.0.0.1",
               "DB_PATH": str(database), "CAPROVER_GIT_COMMIT_SHA": commit}
        self.process = subprocess.Popen([sys.executable, str(TASKS_APP)], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/version", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                assert self.process.poll() is None, "the example app exited"
                time.sleep(0.05)
        raise AssertionError("the example app did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
