"""The rows a data rollback would lose, counted by comparing the live database with the snapshot."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from conftest import create_tasks_database
from railguard.rehearsal.rows import rows_written_since


def copy_of(database: Path, path: Path) -> Path:
    source = sqlite3.connect(database)
    target = sqlite3.connect(path)
    source.backup(target)
    source.close()
    target.close()
    return path


def run(database: Path, script: str) -> None:
    connection = sqlite3.connect(database)
    connection.executescript(script)
    connection.commit()
    connection.close()


def test_rows_inserted_changed_and_in_new_tables_are_lost_deleted_ones_come_back(tmp_path):
    live = create_tasks_database(tmp_path / "tasks.db", rows=10)
    run(live, "CREATE TABLE dropped_later (x); INSERT INTO dropped_later VALUES (1), (2);")
    snapshot = copy_of(live, tmp_path / "snapshot.sqlite3")
    # The migration: a column, a table; then the app writes.
    run(live, """
        ALTER TABLE tasks ADD COLUMN due TEXT;
        CREATE TABLE [tag "x"] (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO [tag "x"] (name) VALUES ('a'), ('b'), ('c');
        DROP TABLE dropped_later;
        INSERT INTO tasks (title, due) VALUES ('new 1', '2026-12-03'), ('new 2', NULL);
        UPDATE tasks SET done = 1 WHERE id = 1;
        UPDATE tasks SET due = 'tomorrow' WHERE id = 2;
        DELETE FROM tasks WHERE id IN (3, 4);
    """)
    losses = {loss.table: loss for loss in rows_written_since(snapshot, live)}
    assert set(losses) == {"tasks", 'tag "x"', "dropped_later"}
    tasks = losses["tasks"]
    # Over the columns both have (id, title, done): two inserted, one changed (row 2's due is
    # not a column the snapshot has, so it does not count).
    assert (tasks.lost, tasks.back, tasks.present_in, tasks.columns) == (3, 3, "both", ["id", "title", "done"])
    assert tasks.line() == "tasks: 3 rows lost, 3 rows back"
    assert (losses['tag "x"'].lost, losses['tag "x"'].present_in) == (3, "live")
    assert losses['tag "x"'].line() == 'tag "x" (created since the snapshot): 3 rows lost'
    assert (losses["dropped_later"].lost, losses["dropped_later"].back) == (0, 2)


def test_nothing_written_since_is_nothing_lost(tmp_path):
    live = create_tasks_database(tmp_path / "tasks.db", rows=5)
    snapshot = copy_of(live, tmp_path / "snapshot.sqlite3")
    [loss] = rows_written_since(snapshot, live)
    assert (loss.table, loss.lost, loss.back) == ("tasks", 0, 0)
    assert loss.line() == "tasks: 0 rows lost"


def test_counting_never_writes_either_database(tmp_path):
    live = create_tasks_database(tmp_path / "tasks.db", rows=50)
    snapshot = copy_of(live, tmp_path / "snapshot.sqlite3")
    run(live, "INSERT INTO tasks (title) VALUES ('later');")
    before = {path: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
              for path in (live, snapshot)}
    rows_written_since(snapshot, live)
    assert before == {path: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
                      for path in (live, snapshot)}


def test_a_missing_live_database_is_an_error_not_a_new_empty_file(tmp_path):
    live = create_tasks_database(tmp_path / "tasks.db", rows=1)
    snapshot = copy_of(live, tmp_path / "snapshot.sqlite3")
    missing = tmp_path / "gone.db"
    try:
        rows_written_since(snapshot, missing)
    except sqlite3.OperationalError:
        pass
    else:
        raise AssertionError("a missing live database was opened")
    assert not missing.exists()
