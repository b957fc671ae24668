"""The example app keeps the interface its README promises to the demo, the smoke check and
the restore drill."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]


def metrics(app) -> dict[str, list]:
    status, text = app.get("/metrics")
    assert status == 200
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_a_fresh_database_is_created_migrated_in_wal_mode_and_healthy(start_app):
    app = start_app()
    assert app.get("/health") == (200, "ok\n")
    assert app.get("/health?full=1") == (200, "ok\n")
    connection = sqlite3.connect(app.db_path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert [row[:2] for row in connection.execute("SELECT version, name FROM schema_migrations ORDER BY version")] \
        == [(1, "create tasks"), (2, "record when a task was completed")]


def test_tasks_can_be_created_listed_and_completed(start_app):
    app = start_app()
    assert app.json("POST", "/tasks", {"title": "write the runbook"}) == (
        201, {"id": 1, "title": "write the runbook", "done": False, "completed_at": None})
    app.json("POST", "/tasks", {"title": "try a restore"})
    status, task = app.json("POST", "/tasks/2/complete")
    assert status == 200 and task["done"] is True and task["completed_at"].endswith("Z")
    status, listing = app.json("GET", "/tasks")
    assert status == 200
    assert [(t["title"], t["done"]) for t in listing["tasks"]] == [
        ("write the runbook", False), ("try a restore", True)]


def test_bad_task_requests_get_4xx_with_a_reason(start_app):
    app = start_app()
    assert app.json("POST", "/tasks", {"title": "  "})[0] == 400
    assert app.json("POST", "/tasks", {"name": "x"})[0] == 400
    assert app.json("POST", "/tasks/99/complete") == (404, {"error": "no task 99"})
    assert app.json("GET", "/nowhere") == (404, {"error": "no route GET /nowhere"})


def test_metrics_carry_start_time_in_ms_migrations_ok_and_the_commit(start_app):
    app = start_app(commit="0123abcd")
    families = metrics(app)
    started_ms = families["app_started_at"][0].value
    assert started_ms > 1_600_000_000_000  # milliseconds, not seconds
    assert families["migrations_ok"][0].value == 1
    assert families["tasks_app_schema_version"][0].value == 2
    build = families["tasks_app_build_info"][0]
    assert (build.labels, build.value) == ({"commit": "0123abcd"}, 1)
    assert app.json("GET", "/version") == (200, {"commit": "0123abcd", "started_at": int(started_ms)})


def test_a_database_made_before_migrations_existed_is_adopted(start_app, tmp_path):
    db = tmp_path / "old.db"
    connection = sqlite3.connect(db)
    connection.executescript("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
                             "done INTEGER NOT NULL DEFAULT 0); INSERT INTO tasks(title) VALUES ('kept');")
    connection.close()
    app = start_app(db)
    assert app.get("/health") == (200, "ok\n")
    assert [t["title"] for t in app.json("GET", "/tasks")[1]["tasks"]] == ["kept"]


def test_a_database_from_a_newer_build_keeps_health_at_503(start_app, tmp_path):
    db = tmp_path / "newer.db"
    connection = sqlite3.connect(db)
    connection.executescript("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                             "applied_at TEXT NOT NULL); INSERT INTO schema_migrations VALUES (3, 'future', 'x');")
    connection.close()
    app = start_app(db)
    for _ in range(2):  # each request retries, and fails the same way
        status, body = app.get("/health")
        assert (status, body) == (503, "migrations failed: database has schema version 3, newer than this build "
                                       "knows (2); deploy a newer build or restore an older backup\n")
    assert metrics(app)["migrations_ok"][0].value == 0
    assert app.json("GET", "/tasks")[0] == 503
    code, log = app.stop()
    assert code == 0
    assert log.count("tasks-app: migrations failed: database has schema version 3") == 1


def test_a_tasks_table_of_another_shape_cannot_be_migrated(start_app, tmp_path):
    db = tmp_path / "other-shape.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, text TEXT)")
    connection.close()
    app = start_app(db)
    status, body = app.get("/health")
    assert status == 503
    assert body.startswith("migrations failed: migration 1 (create tasks) failed: no such column: done")
    # The failed migration rolled back: nothing recorded, so a fixed database can still migrate.
    assert sqlite3.connect(db).execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)


def test_a_migration_that_fails_halfway_is_rolled_back_and_reported(start_app, tmp_path):
    db = tmp_path / "half.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL "
                       "DEFAULT 0, completed_at TEXT)")
    connection.close()
    app = start_app(db)
    assert app.get("/health") == (503, "migrations failed: migration 2 (record when a task was completed) failed: "
                                       "duplicate column name: completed_at\n")
    assert sqlite3.connect(db).execute("SELECT version FROM schema_migrations").fetchall() == [(1,)]


def test_a_missing_database_directory_is_unhealthy_and_never_created(start_app, tmp_path):
    app = start_app(tmp_path / "no-volume" / "tasks.db")
    assert app.get("/health") == (503, f"database unavailable: directory {tmp_path / 'no-volume'} does not exist "
                                       "(is the volume mounted?)\n")
    assert not (tmp_path / "no-volume").exists()


def test_a_database_that_appears_later_is_picked_up_without_a_restart(start_app, tmp_path):
    app = start_app(tmp_path / "late" / "tasks.db")
    assert app.get("/health")[0] == 503
    (tmp_path / "late").mkdir()
    assert app.get("/health") == (200, "ok\n")
    assert metrics(app)["migrations_ok"][0].value == 1


def test_a_file_that_is_not_a_database_is_unhealthy(start_app, tmp_path):
    db = tmp_path / "garbage.db"
    db.write_bytes(b"this is not SQLite" * 100)
    app = start_app(db)
    assert app.get("/health") == (503, "database unavailable: file is not a database\n")


def test_full_health_fails_while_another_writer_holds_the_lock(start_app):
    app = start_app()
    assert app.get("/health") == (200, "ok\n")
    writer = sqlite3.connect(app.db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        assert app.get("/health") == (200, "ok\n")  # readers are not blocked in WAL mode
        status, body = app.get("/health?full=1")
        assert (status, body) == (503, "database check failed: database is locked\n")
    finally:
        writer.execute("ROLLBACK")
    assert app.get("/health?full=1") == (200, "ok\n")
    # The deep check never leaves a row behind.
    assert sqlite3.connect(app.db_path).execute("SELECT count(*) FROM tasks").fetchone() == (0,)


def test_sigterm_stops_the_app_with_exit_0(start_app):
    app = start_app()
    assert app.get("/health")[0] == 200
    code, log = app.stop()
    assert code == 0
    assert log.splitlines()[-1] == "tasks-app: stopped"
    assert f"tasks-app: listening on {app.base_url} commit=abc123 db={app.db_path}" in log


def test_the_image_carries_an_exact_copy_of_railguards_probe():
    copied = (ROOT / "examples" / "tasks-app" / "probe.py").read_text()
    assert copied == (ROOT / "src" / "railguard" / "probe.py").read_text(), \
        "examples/tasks-app/probe.py differs: cp src/railguard/probe.py examples/tasks-app/probe.py"


def test_the_images_probe_reports_the_apps_reason_for_being_unhealthy(start_app, tmp_path):
    import subprocess
    import sys

    db = tmp_path / "newer.db"
    connection = sqlite3.connect(db)
    connection.executescript("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                             "applied_at TEXT NOT NULL); INSERT INTO schema_migrations VALUES (9, 'future', 'x');")
    connection.close()
    app = start_app(db)
    probe = ROOT / "examples" / "tasks-app" / "probe.py"
    result = subprocess.run([sys.executable, "-I", "-S", str(probe), f"{app.base_url}/health"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == (f"unhealthy: status 503 (expected 200): {app.base_url}/health migrations failed: "
                             "database has schema version 9, newer than this build knows (2); deploy a newer build "
                             "or restore an older backup\n")
