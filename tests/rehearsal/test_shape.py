"""The shape of a database (schema and row counts) read read-only, and what changed between two:
real SQLite files, the kinds of change a migration makes."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from railguard.rehearsal.shape import ShapeUnreadable, compare, read_shape

BEFORE = """
PRAGMA journal_mode=WAL;
CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER DEFAULT 0);
CREATE TABLE tags (task_id INTEGER, tag TEXT, PRIMARY KEY (task_id, tag)) WITHOUT ROWID;
CREATE INDEX tasks_by_title ON tasks (title);
CREATE VIEW open_tasks AS SELECT * FROM tasks WHERE done = 0;
INSERT INTO tasks (title) VALUES ('a'), ('b'), ('c');
INSERT INTO tags VALUES (1, 'x');
"""

MIGRATION = """
ALTER TABLE tasks ADD COLUMN due TEXT NOT NULL DEFAULT '';
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
DROP INDEX tasks_by_title;
CREATE UNIQUE INDEX tasks_by_title ON tasks (title, due);
DROP VIEW open_tasks;
CREATE TRIGGER tasks_touch AFTER UPDATE ON tasks BEGIN SELECT 1; END;
INSERT INTO tasks (title) VALUES ('d');
PRAGMA user_version = 3;
"""


def database(path: Path, script: str) -> Path:
    with closing(sqlite3.connect(path)) as db:
        db.executescript(script)
    return path


def test_a_migration_is_read_as_the_changes_it_made(tmp_path: Path) -> None:
    db = database(tmp_path / "tasks.db", BEFORE)
    before = read_shape(db)
    database(db, MIGRATION)
    change = compare(before, read_shape(db))
    assert change.schema_changed
    assert change.schema_lines() == [
        "table notes added",
        "column tasks.due TEXT NOT NULL DEFAULT '' added",
        "index tasks_by_title changed: tasks_by_title ON tasks(title) -> UNIQUE tasks_by_title ON tasks(title, due)",
        "view open_tasks removed",
        "trigger tasks_touch added",
        "user_version 0 -> 3",
    ]
    assert change.row_lines() == ["rows notes: - -> 0", "rows tags: 1 -> 1", "rows tasks: 3 -> 4"]
    as_json = change.as_dict()
    assert as_json["rows"]["tasks"] == {"before": 3, "after": 4}
    assert as_json["columns_added"] == {"tasks": ["due TEXT NOT NULL DEFAULT ''"]}


def test_rows_written_without_a_schema_change_are_not_a_schema_change(tmp_path: Path) -> None:
    db = database(tmp_path / "tasks.db", BEFORE)
    before = read_shape(db)
    database(db, "INSERT INTO tasks (title) VALUES ('d'); DELETE FROM tags;")
    change = compare(before, read_shape(db))
    assert not change.schema_changed
    assert change.lines() == ["schema unchanged", "rows tags: 1 -> 0", "rows tasks: 3 -> 4"]


def test_removed_and_redeclared_columns_are_named(tmp_path: Path) -> None:
    db = database(tmp_path / "tasks.db", BEFORE)
    before = read_shape(db)
    database(db, "DROP VIEW open_tasks; ALTER TABLE tasks DROP COLUMN done; DROP TABLE tags;"
                 "ALTER TABLE tasks RENAME TO old_tasks; CREATE TABLE tasks (id INTEGER PRIMARY KEY, title BLOB);"
                 "DROP TABLE old_tasks;")
    change = compare(before, read_shape(db))
    assert change.tables_removed == ["tags"]
    assert change.schema_lines() == [
        "table tags removed",
        "column tasks.done removed",
        "column tasks.title changed: title TEXT NOT NULL -> title BLOB",
        "index tasks_by_title removed",
        "view open_tasks removed",
    ]


def test_reading_never_writes_the_database(tmp_path: Path) -> None:
    db = database(tmp_path / "tasks.db", BEFORE)
    with closing(sqlite3.connect(db)) as db_connection:
        db_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    mtime = db.stat().st_mtime_ns
    read_shape(db)
    assert (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns) == (digest, mtime)


@pytest.mark.parametrize("content", [None, b"not a database at all, just some bytes" * 100])
def test_a_missing_file_or_not_a_database_is_a_clear_error_and_creates_nothing(
        tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "tasks.db"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ShapeUnreadable) as caught:
        read_shape(path)
    assert str(path) in caught.value.message
    assert path.exists() == (content is not None)
