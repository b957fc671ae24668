"""Helpers of the rehearsal tests: the example app (examples/tasks-app) in a real git repository,
commits that add a migration to it, a production database the example app itself migrated, and
verified backups of it taken by railguard."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

from railguard.backup import take_backup
from railguard.backup.catalog import BackupRecord, resolve_backup
from railguard.backup.naming import stem_for
from railguard.config import AppSettings, BackupSettings, DrillSettings, RehearsalSettings, Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tasks-app"
#: The files of the example app that its image is built from (examples/tasks-app/Dockerfile).
APP_FILES = ("app.py", "probe.py", "startup.sh", "Dockerfile", "captain-definition")
#: Where app.py's migration list ends: a new migration goes just before it (append only).
END_OF_MIGRATIONS = "]\nLATEST_VERSION = MIGRATIONS[-1][0]"

#: A migration that works on a developer's empty database and fails on production data:
#: SQLite refuses to add a NOT NULL column without a default to a table that has rows
#: (alter.c, sqlite3AlterFinishAddColumn: "Cannot add a NOT NULL column with default value NULL"
#: is raised by a SELECT over the table's rows, so an empty table passes).
FAILS_ON_EXISTING_ROWS = (3, "add task priority", "ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL;")
#: The same change done right: a default for the rows already there, and an index.
GOOD_MIGRATION = (3, "add task priority", "ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;\n"
                                          "CREATE INDEX tasks_priority ON tasks(priority);")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class AppRepository:
    """The example app's repository: the first commit is the shipped example, unchanged."""

    path: Path

    @classmethod
    def create(cls, path: Path) -> AppRepository:
        path.mkdir(parents=True)
        git(path, "init", "--quiet", "--initial-branch=main")
        for key, value in (("user.name", "Dev"), ("user.email", "dev@example.test"), ("commit.gpgsign", "false")):
            git(path, "config", key, value)
        for name in APP_FILES:
            shutil.copy2(EXAMPLE / name, path / name)
        repository = cls(path)
        repository.commit("the example app")
        return repository

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        for name, text in (files or {}).items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "--allow-empty", "-m", message)
        return self.sha()

    def add_migration(self, migration: tuple[int, str, str]) -> str:
        """A commit appending ``migration`` (version, name, SQL) to app.py's MIGRATIONS."""
        version, name, sql = migration
        source = (self.path / "app.py").read_text()
        assert END_OF_MIGRATIONS in source, "examples/tasks-app/app.py changed shape: update this helper"
        entry = f"    ({version}, {name!r}, \"\"\"\n        {sql}\n    \"\"\"),\n"
        return self.commit(f"migration {version}: {name}",
                           {"app.py": source.replace(END_OF_MIGRATIONS, entry + END_OF_MIGRATIONS, 1)})

    def sha(self, ref: str = "HEAD") -> str:
        return git(self.path, "rev-parse", f"{ref}^{{commit}}")

    def archive(self, ref: str) -> bytes:
        return subprocess.run(["git", "archive", "--format=tar", ref], cwd=self.path, check=True,
                              capture_output=True).stdout


def example_app_module() -> ModuleType:
    """examples/tasks-app/app.py as a module (its own migrate(), so production is what the app made)."""
    spec = importlib.util.spec_from_file_location("tasks_app_for_rehearsal_tests", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_production_database(path: Path, *, rows: int) -> Path:
    """A database the shipped example app created and migrated, holding ``rows`` tasks."""
    app = example_app_module()
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = app.open_database(str(path))
    try:
        app.migrate(connection)
        connection.executemany("INSERT INTO tasks(title) VALUES (?)", [(f"task {i}",) for i in range(rows)])
    finally:
        connection.close()
    return path


def take_verified_backup(database: Path, directory: Path, *, minutes_ago: int = 0) -> BackupRecord:
    now = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    take_backup(database, BackupSettings(directory=directory, prune=False), now=now)
    return resolve_backup(directory, stem_for(database), "latest")


def app_settings(root: Path, database: Path, *, timeout: str = "30s", count_assertion: bool = True,
                 **rehearsal: object) -> AppSettings:
    """The app ``tasks``: its drill starts the example app with ``python3 app.py`` (relative: run
    from the candidate's tree by the rehearsal) and asserts the copy has tasks; the rehearsal as given."""
    (root / "scratch").mkdir(exist_ok=True)
    drill = DrillSettings(command=[sys.executable, "app.py"],
                          env={"DB_PATH": "{db}", "CAPROVER_GIT_COMMIT_SHA": "rehearsal"},
                          start_timeout=timeout, stop_grace="5s", scratch_dir=root / "scratch",
                          assertions=[{"sql": "SELECT count(*) FROM tasks", "expect": "> 0"}] if count_assertion else [])
    return AppSettings(database=database, backup=BackupSettings(directory=root / "backups", prune=False),
                       drill=drill, rehearsal=RehearsalSettings(**rehearsal))


def settings_for(app: AppSettings) -> Settings:
    return Settings(apps={"tasks": app})
