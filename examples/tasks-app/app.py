"""tasks-app: the stand-in for the team's task bot, in one file of standard-library Python.

It has the same shape as their Bun app: one SQLite database in WAL mode, versioned
migrations applied at start-up and recorded in ``schema_migrations``, ``PORT`` from the
environment, a few task endpoints, and the endpoints the plan asks for (``/health``,
``/metrics``, ``/version``). It needs nothing but ``python3`` (3.9+) and the sqlite3 module,
so it runs in a minimal Debian image built offline.

Environment: ``DB_PATH`` (default /app/data/tasks.db), ``PORT`` (default 3000), ``HOST``
(default 127.0.0.1; the Dockerfile sets 0.0.0.0), ``CAPROVER_GIT_COMMIT_SHA`` (default
``unknown``). The interface is written down in README.md; other parts of railguard (the smoke
check, the demo, the restore drill) start this file as a subprocess and rely on it.

A database it cannot migrate does not stop the process: it keeps serving, ``/health``
answers 503 with the reason and ``migrations_ok`` is 0, so Docker marks the container
unhealthy and an operator can read why over HTTP. Each ``/health`` retries opening and
migrating, so a volume that appears late is picked up without a restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

#: (version, name, SQL). Append only: a released migration never changes. Migration 1 uses
#: IF NOT EXISTS so that a database made before migrations existed (the same tasks table,
#: no schema_migrations) is adopted rather than refused.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "create tasks", """
        CREATE TABLE IF NOT EXISTS tasks (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            done INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS tasks_done ON tasks(done);
    """),
    (2, "record when a task was completed", """
        ALTER TABLE tasks ADD COLUMN completed_at TEXT;
    """),
]
LATEST_VERSION = MIGRATIONS[-1][0]
#: The columns the handlers use; checked after migrating so that a database whose tasks table
#: has another shape is reported at start-up, not as a 500 on the first request.
REQUIRED_COLUMNS = {"id", "title", "done", "completed_at"}
BUSY_TIMEOUT_MS = 5000


class MigrationError(Exception):
    """The database cannot be brought to the schema this build expects."""


class DatabaseUnavailable(Exception):
    """The database file cannot be opened or switched to WAL."""


def connect(path: str) -> sqlite3.Connection:
    # mode=rw: never create a database file in a wrong place (a missing volume must show up
    # as an unhealthy app, not as a fresh empty database); the first start creates it below.
    uri = "file:" + path.replace("?", "%3f").replace("#", "%23") + "?mode=rw"
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
    connection.row_factory = sqlite3.Row
    return connection


def open_database(path: str) -> sqlite3.Connection:
    """Open (creating the file when its directory exists) and switch to WAL."""
    if not os.path.exists(path):
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise DatabaseUnavailable(f"directory {directory} does not exist (is the volume mounted?)")
        sqlite3.connect(path).close()
    connection = connect(path)
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        connection.close()
        raise DatabaseUnavailable(f"could not switch {path} to WAL (journal_mode is {mode})")
    return connection


def migrate(connection: sqlite3.Connection) -> int:
    """Apply the pending migrations, each in its own transaction; return the schema version."""
    connection.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)""")
    applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
    unknown = sorted(applied - {version for version, _, _ in MIGRATIONS})
    if unknown:
        raise MigrationError(f"database has schema version {unknown[-1]}, newer than this build knows "
                             f"({LATEST_VERSION}); deploy a newer build or restore an older backup")
    for version, name, sql in MIGRATIONS:
        if version in applied:
            continue
        try:
            connection.execute("BEGIN IMMEDIATE")
            for statement in _statements(sql):
                connection.execute(statement)
            connection.execute("INSERT INTO schema_migrations(version, name, applied_at) "
                               "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", (version, name))
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise MigrationError(f"migration {version} ({name}) failed: {exc}") from exc
        log(f"applied migration {version} ({name})")
    columns = {row["name"] for row in connection.execute("PRAGMA table_info(tasks)")}
    missing = sorted(REQUIRED_COLUMNS - columns)
    if missing:
        raise MigrationError(f"table tasks lacks column(s) {', '.join(missing)} after migrating")
    return LATEST_VERSION


def _statements(sql: str) -> list[str]:
    return [part.strip() for part in sql.split(";") if part.strip()]


class Database:
    """The app's view of its database: ready (migrated) or not, with the reason."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.version = 0
        self.error: str | None = "not opened yet"
        self._lock = threading.Lock()
        self._logged_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.error is None

    def ensure_ready(self) -> bool:
        """Open and migrate unless already done; safe to call from every request."""
        if self.error is None:
            return True
        with self._lock:
            if self.error is None:
                return True
            try:
                connection = open_database(self.path)
                try:
                    self.version = migrate(connection)
                finally:
                    connection.close()
                self.error = None
                log(f"database {self.path} ready at schema version {self.version}")
            except (MigrationError, DatabaseUnavailable, sqlite3.Error, OSError) as exc:
                self.error = f"migrations failed: {exc}" if isinstance(exc, MigrationError) else \
                    f"database unavailable: {exc}"
                if self.error != self._logged_error:
                    log(self.error)
                    self._logged_error = self.error
        return self.error is None

    @contextlib.contextmanager
    def session(self) -> Iterator[sqlite3.Connection]:
        connection = connect(self.path)
        try:
            yield connection
        finally:
            connection.close()


class App:
    def __init__(self, db_path: str, commit: str) -> None:
        self.database = Database(db_path)
        self.commit = commit
        self.started_at_ms = int(time.time() * 1000)

    def health(self, full: bool) -> tuple[int, str]:
        if not self.database.ensure_ready():
            return 503, self.database.error or "not ready"
        try:
            with self.database.session() as connection:
                connection.execute("SELECT count(*) FROM tasks").fetchone()
                if full:
                    # A real write that never commits: proves the file, its directory and the WAL
                    # are writable and that no other writer holds the lock past the busy timeout.
                    connection.execute("BEGIN IMMEDIATE")
                    try:
                        connection.execute("INSERT INTO tasks(title) VALUES ('health check')")
                    finally:
                        connection.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return 503, f"database check failed: {exc}"
        return 200, "ok"

    def metrics(self) -> str:
        ok = 1 if self.database.ensure_ready() else 0
        commit = self.commit.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return (
            "# HELP app_started_at Time the process started, in epoch milliseconds (the plan's name).\n"
            "# TYPE app_started_at gauge\n"
            f"app_started_at {self.started_at_ms}\n"
            "# HELP migrations_ok 1 when every migration is applied and the schema is as expected, else 0.\n"
            "# TYPE migrations_ok gauge\n"
            f"migrations_ok {ok}\n"
            "# HELP tasks_app_schema_version Highest migration applied by this process (0 before any).\n"
            "# TYPE tasks_app_schema_version gauge\n"
            f"tasks_app_schema_version {self.database.version}\n"
            "# HELP tasks_app_build_info The deployed commit (CAPROVER_GIT_COMMIT_SHA).\n"
            "# TYPE tasks_app_build_info gauge\n"
            f'tasks_app_build_info{{commit="{commit}"}} 1\n'
        )

    def list_tasks(self) -> list[dict]:
        with self.database.session() as connection:
            rows = connection.execute("SELECT id, title, done, completed_at FROM tasks ORDER BY id").fetchall()
        return [_task(row) for row in rows]

    def create_task(self, title: str) -> dict:
        with self.database.session() as connection:
            cursor = connection.execute("INSERT INTO tasks(title) VALUES (?)", (title,))
            row = connection.execute("SELECT id, title, done, completed_at FROM tasks WHERE id = ?",
                                     (cursor.lastrowid,)).fetchone()
        return _task(row)

    def complete_task(self, task_id: int) -> dict | None:
        with self.database.session() as connection:
            connection.execute("UPDATE tasks SET done = 1, completed_at = COALESCE(completed_at, "
                               "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) WHERE id = ?", (task_id,))
            row = connection.execute("SELECT id, title, done, completed_at FROM tasks WHERE id = ?",
                                     (task_id,)).fetchone()
        return _task(row) if row else None


def _task(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "title": row["title"], "done": bool(row["done"]), "completed_at": row["completed_at"]}


_COMPLETE = re.compile(r"^/tasks/(\d+)/complete$")
MAX_BODY = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    app: App  # set on the subclass made in make_server
    server_version = "tasks-app"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/health":
            status, reason = self.app.health(full=query.get("full", ["0"])[0] not in ("", "0", "false"))
            self._send(status, reason + "\n", "text/plain; charset=utf-8")
        elif url.path == "/metrics":
            self._send(200, self.app.metrics(), "text/plain; version=0.0.4; charset=utf-8")
        elif url.path == "/version":
            self._json(200, {"commit": self.app.commit, "started_at": self.app.started_at_ms})
        elif url.path == "/tasks":
            if self._require_database():
                self._json(200, {"tasks": self.app.list_tasks()})
        else:
            self._json(404, {"error": f"no route GET {url.path}"})

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        if path == "/tasks":
            try:
                title = json.loads(body or b"{}").get("title")
            except (ValueError, AttributeError):
                title = None
            if not isinstance(title, str) or not title.strip():
                self._json(400, {"error": 'send JSON {"title": "..."} with a non-empty title'})
            elif self._require_database():
                self._json(201, self.app.create_task(title.strip()))
        elif match := _COMPLETE.match(path):
            if self._require_database():
                task = self.app.complete_task(int(match.group(1)))
                if task is None:
                    self._json(404, {"error": f"no task {match.group(1)}"})
                else:
                    self._json(200, task)
        else:
            self._json(404, {"error": f"no route POST {path}"})

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._json(413 if length > MAX_BODY else 400, {"error": "bad or too large Content-Length"})
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _require_database(self) -> bool:
        if self.app.database.ensure_ready():
            return True
        self._json(503, {"error": self.app.database.error})
        return False

    def _json(self, status: int, document: dict) -> None:
        self._send(status, json.dumps(document) + "\n", "application/json")

    def _send(self, status: int, text: str, content_type: str) -> None:
        payload = text.encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # One line per request would drown the start-up and migration lines in the container log.
        pass


def make_server(app: App, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def log(message: str) -> None:
    print(f"tasks-app: {message}", file=sys.stderr, flush=True)


def main() -> int:
    db_path = os.environ.get("DB_PATH") or "/app/data/tasks.db"
    host = os.environ.get("HOST") or "127.0.0.1"
    commit = os.environ.get("CAPROVER_GIT_COMMIT_SHA") or "unknown"
    try:
        port = int(os.environ.get("PORT") or "3000")
    except ValueError:
        log(f"PORT must be a number, got {os.environ.get('PORT')!r}")
        return 1
    app = App(db_path, commit)
    app.database.ensure_ready()
    try:
        server = make_server(app, host, port)
    except OSError as exc:
        log(f"cannot listen on {host}:{port}: {exc}")
        return 1

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it must run on another thread
        # than the one serving; docker stop then ends the process at once, not after 10 s.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_port = server.server_address[1]
    log(f"listening on http://{host}:{bound_port} commit={commit} db={db_path}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
