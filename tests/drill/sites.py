"""Helpers of the drill tests: a production data directory, real backups of it taken by
railguard, a railguard.toml whose [drill] section starts the example app
(examples/tasks-app/app.py) as a real process, and ways to watch processes come and go."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from railguard.backup import take_backup
from railguard.config import BackupSettings

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "examples" / "tasks-app" / "app.py"
APP_COMMAND = [sys.executable, str(APP)]
APP_ENV = {"DB_PATH": "{db}", "CAPROVER_GIT_COMMIT_SHA": "drill"}


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))


@dataclass
class Site:
    """One app's production directory and its backups, outside each other (as the tests need to
    compare the production directory before and after without the backups changing it)."""

    root: Path
    database: Path
    backups: Path
    config: Path

    def backup(self, *, minutes_later: int = 0, at: datetime | None = None) -> Path:
        """A verified backup taken now (plus ``minutes_later``), or at ``at`` when a test needs
        to know the backup's name in advance."""
        now = (at or datetime.now(timezone.utc)) + timedelta(minutes=minutes_later)
        settings = BackupSettings(directory=self.backups, prune=False)
        return take_backup(self.database, settings, now=now).path

    def configure(self, **drill: Any) -> Path:
        """Write railguard.toml with this [apps.tasks.drill] section (defaults: the example app)."""
        values: dict[str, Any] = {"command": APP_COMMAND, "env": APP_ENV, "start_timeout": "20s",
                                  "stop_grace": "5s", "scratch_dir": str(self.root / "scratch")}
        values.update(drill)
        values = {key: value for key, value in values.items() if value is not None}
        assertions = values.pop("assertions", [])
        destinations = values.pop("destinations", {})
        lines = ["[apps.tasks]", f"database = {toml_value(str(self.database))}", "",
                 "[apps.tasks.backup]", f"directory = {toml_value(str(self.backups))}", "",
                 "[apps.tasks.drill]"]
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        for assertion in assertions:
            lines += ["", "[[apps.tasks.drill.assertions]]"]
            lines += [f"{key} = {toml_value(value)}" for key, value in assertion.items()]
        for name, settings in destinations.items():
            lines += ["", f"[apps.tasks.destinations.{name}]"]
            lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
        self.config.write_text("\n".join(lines) + "\n")
        (self.root / "scratch").mkdir(exist_ok=True)
        return self.config

    def drill_log(self) -> list[dict[str, str]]:
        from railguard.logfmt import read_lines

        return read_lines(self.backups / "drill.log")

    def scratch_entries(self) -> list[str]:
        scratch = self.root / "scratch"
        return sorted(p.name for p in scratch.iterdir()) if scratch.exists() else []


def snapshot(directory: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every entry under ``directory`` with its bytes and mtime (ns), and the directory's own mtime."""
    state: dict[str, tuple[bytes | None, int]] = {".": (None, directory.stat().st_mtime_ns)}
    for path in sorted(directory.rglob("*")):
        stat = path.stat()
        state[str(path.relative_to(directory))] = (path.read_bytes() if path.is_file() else None, stat.st_mtime_ns)
    return state


def files_of(directory: Path) -> dict[str, tuple[bytes | None, int]]:
    """:func:`snapshot` without the directory's own mtime: every entry, its bytes and mtime. For
    a live database that a pre-deploy snapshot has read: SQLite's reader of a WAL database makes
    and removes the ``-shm`` beside it, which moves the directory's mtime and nothing else."""
    return {name: entry for name, entry in snapshot(directory).items() if name != "."}


def process_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting to be reaped (it runs nothing any more)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "?")
    return state in {"Z", "X"}


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def wait_for_pids(path: Path, count: int, timeout: float = 30.0) -> list[int]:
    """The pids a test command wrote, one per line, once ``count`` of them are there."""
    def ready() -> bool:
        return path.exists() and len(path.read_text().split()) >= count

    assert wait_until(ready, timeout), f"the command did not write {count} pid(s) to {path}"
    return [int(pid) for pid in path.read_text().split()]


def make_database_the_app_cannot_migrate(path: Path) -> Path:
    """From before a schema change the app cannot migrate (examples/tasks-app/README.md): a
    ``tasks`` table of another shape, so the column check fails after migration 2."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, text TEXT)")
    connection.executemany("INSERT INTO tasks(text) VALUES (?)", [(f"old {i}",) for i in range(10)])
    connection.commit()
    connection.close()
    return path


def hanging_command(pid_file: Path, *, ignore_sigterm: bool = True, with_child: bool = True) -> list[str]:
    """An app that never serves: it records its pid (and its child's) and sleeps, deaf to SIGTERM."""
    body = ("import os, signal, subprocess, sys, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else "")
            + f"pids = open({str(pid_file)!r}, 'a')\n"
            + ("child = subprocess.Popen([sys.executable, '-c', "
               "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
               "pids.write(f'{child.pid}\\n')\n" if with_child else "")
            + "pids.write(f'{os.getpid()}\\n'); pids.close()\n"
            + "print('hanging at start', flush=True)\n"
            + "time.sleep(600)\n")
    return [sys.executable, "-c", body]
