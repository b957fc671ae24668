"""The example app (examples/tasks-app) as a real process on 127.0.0.1.

:class:`AppProcess`: on a fixed port, for the tests that restart it the way a deploy would (the
gate's and the runbook's fake CapRover). :func:`start_example_app`: one process on the port given,
for the tests that stop and start it themselves (the smoke check's, the monitor's deploy flow).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        if self.process is not None:
            stop_process(self.process)
        self.process = None


def stop_process(process: subprocess.Popen[Any], grace: float = 30) -> None:
    """SIGTERM, then SIGKILL when it has not exited within ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ExampleApp:
    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        stop_process(self.process)


def start_example_app(database: Path, port: int, commit: str, *, within: float = 60) -> ExampleApp:
    """The example app on 127.0.0.1:``port`` over ``database``, serving ``commit``, once it
    accepts connections (within ``within`` seconds); its environment is ours, without HOST."""
    env = {**os.environ, "DB_PATH": str(database), "PORT": str(port), "CAPROVER_GIT_COMMIT_SHA": commit}
    env.pop("HOST", None)
    process = subprocess.Popen([sys.executable, str(TASKS_APP)], env=env, stderr=subprocess.DEVNULL, text=True)
    app = ExampleApp(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + within
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the example app exited {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return app
        except OSError:
            if time.monotonic() >= deadline:
                app.stop()
                raise AssertionError(f"the example app did not listen within {within:g} s") from None
            time.sleep(0.05)
