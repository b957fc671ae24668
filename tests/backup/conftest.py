from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from railguard.config import BackupSettings

WRITER = Path(__file__).with_name("writer.py")


class Writer:
    """The writer process of writer.py, started and stopped by a test."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.stop_file = database.with_name("stop-writer")
        self.process = subprocess.Popen([sys.executable, str(WRITER), str(database), str(self.stop_file)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = Path(str(self.stop_file) + ".ready")
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"writer did not start: {self.process.communicate()}")
            time.sleep(0.01)

    def committed_now(self) -> int:
        connection = sqlite3.connect(self.database, timeout=10)
        try:
            return connection.execute("SELECT n FROM counter").fetchone()[0]
        finally:
            connection.close()

    def stop(self) -> tuple[int, int, str]:
        self.stop_file.touch()
        out, err = self.process.communicate(timeout=30)
        fields = dict(part.split("=") for part in out.split())
        return int(fields["committed"]), int(fields["errors"]), err


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    running = Writer(data / "tasks.db")
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


@pytest.fixture
def settings(tmp_path: Path) -> BackupSettings:
    return BackupSettings(directory=tmp_path / "backups")


def _as_nobody(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a command as the unprivileged user `nobody` (tests run as root, which reads anything)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the user nobody")
    return subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *command],
                          capture_output=True, text=True, **kwargs)


@pytest.fixture
def as_nobody():
    return _as_nobody
