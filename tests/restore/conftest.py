"""Fixtures for restore tests: an app with a real WAL database and real verified backups."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import create_tasks_database

from railguard.backup import take_backup
from railguard.config import BackupSettings

#: Holds a database open the way the app does (an idle connection after a read), until killed.
HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1])
connection.execute("SELECT count(*) FROM tasks").fetchone()
print("ready", flush=True)
time.sleep(120)
"""


@dataclass
class App:
    root: Path
    database: Path
    backups: Path
    config: Path

    def backup(self, when: datetime | None = None) -> Path:
        moment = when or datetime.now(timezone.utc)
        return take_backup(self.database, BackupSettings(directory=self.backups), now=moment).path


def make_app(root: Path, *, rows: int = 200, wal: bool = True, data_dir: Path | None = None) -> App:
    data = data_dir or root / "data"
    data.mkdir(parents=True, exist_ok=True)
    database = create_tasks_database(data / "tasks.db", rows, wal=wal)
    backups = root / "backups"
    config = root / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{database}"\nurl = "http://127.0.0.1:3000"\n'
                      f'[apps.tasks.backup]\ndirectory = "{backups}"\n', encoding="utf-8")
    return App(root, database, backups, config)


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(tmp_path)


def dump(database: Path) -> str:
    """``sqlite3 DB .dump``: the stock tool's view of every row and schema object."""
    return subprocess.run(["sqlite3", str(database), ".dump"], check=True, capture_output=True, text=True).stdout


def file_state(directory: Path) -> dict[str, str]:
    """Name → sha256 of every file in a directory (hidden ones included)."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.iterdir()) if path.is_file()}


def add_rows(database: Path, titles: list[str]) -> None:
    import sqlite3

    connection = sqlite3.connect(database)
    connection.executemany("INSERT INTO tasks(title) VALUES (?)", [(title,) for title in titles])
    connection.commit()
    connection.close()


@pytest.fixture
def holder() -> Iterator:
    """Start a separate process that keeps a database open; yields a function (path) -> Popen."""
    started: list[subprocess.Popen] = []

    def start(database: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(database)], stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()
