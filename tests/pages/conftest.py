from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from railguard.config import BackupSettings
from railguard.pages.rebuild import rebuild_generation
from railguard.pages.store import GenerationManifest, generation_names, page_digests, store_for
from railguard.pages.writer import GenerationResult, take_generation

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def make_tricky(path: Path, *, page_size: int = 4096, auto_vacuum: str = "NONE", rows: int = 300) -> None:
    """FTS5, WITHOUT ROWID, BLOBs that overflow pages, an index; WAL like the app."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA page_size={page_size}")
    connection.execute(f"PRAGMA auto_vacuum={auto_vacuum}")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.executescript("""
        CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body BLOB);
        CREATE INDEX tasks_title ON tasks (title);
        CREATE TABLE tags (name TEXT PRIMARY KEY, weight INTEGER) WITHOUT ROWID;
        CREATE VIRTUAL TABLE notes USING fts5 (text);
        PRAGMA user_version = 7;
    """)
    add_rows(connection, 1, rows)
    connection.close()


def add_rows(connection: sqlite3.Connection, first: int, count: int) -> None:
    connection.execute("BEGIN")
    for n in range(first, first + count):
        connection.execute("INSERT INTO tasks VALUES (?, ?, ?)", (n, f"task {n}", os.urandom(50 + (n % 7) * 1500)))
        connection.execute("INSERT INTO tags VALUES (?, ?)", (f"tag-{n:06d}", n))
        connection.execute("INSERT INTO notes VALUES (?)", (f"note number {n} about sqlite pages",))
    connection.execute("COMMIT")


def add_rows_to(database: Path, first: int, count: int) -> None:
    """:func:`add_rows` on a connection of its own."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        add_rows(connection, first, count)
    finally:
        connection.close()


def contents(path: Path) -> list[object]:
    connection = sqlite3.connect(path)
    try:
        return [connection.execute("SELECT id, title, body FROM tasks ORDER BY id").fetchall(),
                connection.execute("SELECT * FROM tags ORDER BY name").fetchall(),
                connection.execute("SELECT rowid, text FROM notes WHERE notes MATCH 'sqlite' ORDER BY rowid").fetchall(),
                connection.execute("PRAGMA user_version").fetchone()[0]]
    finally:
        connection.close()


class Generations:
    """Takes generations of one database, a minute apart, and rebuilds them."""

    def __init__(self, database: Path, settings: BackupSettings) -> None:
        self.database = database
        self.settings = settings
        self.taken = 0

    @property
    def store(self) -> Path:
        return store_for(self.settings.directory, self.database.stem)

    def take(self, now: datetime | None = None) -> GenerationResult:
        """A generation at ``now``, else a minute after the one before (from T0). A test that reads
        an age through the CLI, whose clock is the real one, passes a time near that clock."""
        self.taken += 1
        return take_generation(self.database, self.settings, now=now or T0 + timedelta(minutes=self.taken),
                               app="tasks")

    def manifests(self) -> list[GenerationManifest]:
        return sorted((GenerationManifest.parse((self.store / name).read_bytes())
                       for name in generation_names(self.store)), key=lambda manifest: manifest.name)

    def pages(self, manifest: GenerationManifest) -> list[str]:
        """The sha256 of every page, in hex, from the generation's page list (or inline, format 1)."""
        digests = page_digests(self.store, manifest)
        return [digests[i:i + 32].hex() for i in range(0, len(digests), 32)]

    def rebuilt_contents(self, manifest: GenerationManifest, scratch: Path) -> list[object]:
        scratch.mkdir(exist_ok=True)
        with rebuild_generation(self.store, manifest, scratch) as rebuilt:
            return contents(rebuilt.path)


@pytest.fixture
def settings(tmp_path: Path) -> BackupSettings:
    return BackupSettings(directory=tmp_path / "backups")


@pytest.fixture
def database(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "tasks.db"
    make_tricky(path)
    return path


@pytest.fixture
def generations(database: Path, settings: BackupSettings) -> Iterator[Generations]:
    yield Generations(database, settings)


def run_generation_killed_at(point: str, database: Path, settings: BackupSettings, minute: int) -> int:
    """Take a generation in a child process that SIGKILLs itself at ``point``; its return code."""
    code = ("import sys; from datetime import datetime, timedelta, timezone; from pathlib import Path; "
            "from railguard.config import BackupSettings; from railguard.pages.writer import take_generation; "
            "take_generation(Path(sys.argv[1]), BackupSettings(directory=Path(sys.argv[2])), "
            "now=datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc) + timedelta(minutes=int(sys.argv[3])))")
    child = subprocess.run([sys.executable, "-c", code, str(database), str(settings.directory), str(minute)],
                           env={**os.environ, "RAILGUARD_PAGES_KILL_AT": point}, capture_output=True, text=True,
                           timeout=120)
    return child.returncode


def as_format_1(store: Path, manifest: GenerationManifest) -> Path:
    """Rewrite a generation as the first landing wrote it: format 1, its page list inline, no list object.

    The packs are the same in both formats; only where the page list lives differs, so this is
    exactly the store a format-1 railguard left.
    """
    path = store / f"{manifest.name}.generation.json"
    document = json.loads(path.read_bytes())
    digests = page_digests(store, manifest)
    document["pages"] = [digests[i:i + 32].hex() for i in range(0, len(digests), 32)]
    document["format"] = 1
    list_object = store / "lists" / f"{document.pop('page_list')}.list"
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    list_object.unlink()
    return path
