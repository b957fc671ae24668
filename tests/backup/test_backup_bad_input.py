"""Bad input gets one clear line, a documented exit code, and damages nothing."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from railguard.backup import list_backups, take_backup
from railguard.backup.verify import verify_backup
from railguard.config import BackupSettings
from railguard.errors import ExitCode
from railguard.logfmt import read_lines

from conftest import create_tasks_database  # tests/conftest.py

NOW = datetime(2026, 11, 27, 3, 30, tzinfo=timezone.utc)


@contextlib.contextmanager
def mounted(kind: str, target: Path, options: str, source: str = "none") -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", "-t", kind, "-o", options, source, str(target)], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a {kind} here (needs root): {exc}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_missing_database_is_not_found(run_cli, tmp_path: Path):
    result = run_cli("backup", "--db", tmp_path / "nope.db", "--dir", tmp_path / "b")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr.splitlines()[0] == f"error: database {tmp_path / 'nope.db'} does not exist"
    assert result.stderr.splitlines()[1].startswith("hint: ")


def test_a_file_that_is_not_sqlite_is_refused(run_cli, tmp_path: Path):
    (tmp_path / "notes.db").write_text("just text\n")
    result = run_cli("backup", "--db", tmp_path / "notes.db", "--dir", tmp_path / "b")
    assert result.exit_code == ExitCode.USAGE
    assert "is not a SQLite database" in result.stderr


def test_an_empty_file_is_refused(run_cli, tmp_path: Path):
    (tmp_path / "empty.db").touch()
    result = run_cli("backup", "--db", tmp_path / "empty.db", "--dir", tmp_path / "b")
    assert result.exit_code == ExitCode.USAGE
    assert "is not a SQLite database" in result.stderr


def test_a_directory_is_refused(run_cli, tmp_path: Path):
    result = run_cli("backup", "--db", tmp_path, "--dir", tmp_path / "b")
    assert result.exit_code == ExitCode.USAGE
    assert "is a directory, not a SQLite file" in result.stderr


@pytest.fixture
def open_dir(tmp_path_factory) -> Iterator[Path]:
    """A directory every user can enter (pytest's own tmp root is private to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="railguard-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_an_unreadable_database_is_a_clear_error(open_dir: Path, as_nobody):
    tmp_path = open_dir
    database = create_tasks_database(tmp_path / "tasks.db")
    database.chmod(0o600)  # root's, unreadable for nobody
    backups = tmp_path / "b"
    backups.mkdir()
    backups.chmod(0o777)
    result = as_nobody([sys.executable, "-m", "railguard", "backup", "--db", str(database), "--dir", str(backups)])
    assert result.returncode == ExitCode.ERROR, result.stderr
    assert result.stderr.splitlines()[0] == f"error: database {database} is not readable by this user"


def test_a_database_behind_a_closed_directory_is_a_clear_error(open_dir: Path, as_nobody):
    closed = open_dir / "closed"
    closed.mkdir(mode=0o700)
    database = create_tasks_database(closed / "tasks.db")
    result = as_nobody([sys.executable, "-m", "railguard", "backup", "--db", str(database), "--dir",
                        str(open_dir / "b")])
    assert result.returncode == ExitCode.ERROR, result.stderr
    assert "is not readable by this user" in result.stderr.splitlines()[0]


def test_a_backup_directory_that_is_not_writable_is_a_clear_error(tasks_db: Path, tmp_path: Path, run_cli):
    target = tmp_path / "readonly"
    target.mkdir()
    (target / "older-backup.txt").write_text("keep me")
    with mounted("tmpfs", target, "size=1m,ro"):
        result = run_cli("backup", "--db", tasks_db, "--dir", target)
    assert result.exit_code == ExitCode.ERROR
    assert f"backup directory {target} is not writable" in result.stderr


def test_disk_full_during_the_copy_keeps_older_backups(tmp_path: Path, run_cli, fill_with_random_rows):
    database = create_tasks_database(tmp_path / "tasks.db")
    with mounted("tmpfs", tmp_path / "small", "size=6m") as small:
        older = take_backup(database, BackupSettings(directory=small), now=NOW)
        fill_with_random_rows(database, megabytes=8)  # the raw copy no longer fits
        result = run_cli("backup", "--db", database, "--dir", small)
        assert result.exit_code == ExitCode.ERROR
        assert f"no space left in {small}" in result.stderr
        _assert_nothing_but_the_older_backup(small, older)


def test_disk_full_during_compression_keeps_older_backups(tmp_path: Path, run_cli, fill_with_random_rows):
    database = create_tasks_database(tmp_path / "tasks.db")
    with mounted("tmpfs", tmp_path / "small", "size=12m") as small:
        older = take_backup(database, BackupSettings(directory=small), now=NOW)
        fill_with_random_rows(database, megabytes=7)  # the raw copy fits, raw + compressed does not
        result = run_cli("backup", "--db", database, "--dir", small)
        assert result.exit_code == ExitCode.ERROR
        assert f"no space left in {small}" in result.stderr
        _assert_nothing_but_the_older_backup(small, older)


def _assert_nothing_but_the_older_backup(directory: Path, older) -> None:
    records = list_backups(directory, "tasks")
    assert [r.name for r in records] == [older.manifest.name]
    verify_backup(records[0], directory)
    assert [p.name for p in directory.iterdir() if ".tmp-" in p.name] == []
    lines = read_lines(directory / "backup.log")
    assert [line["result"] for line in lines] == ["ok", "failed"]
    assert "space" in lines[-1]["error"] or "full" in lines[-1]["error"]


def test_a_corrupt_source_fails_verification_and_nothing_is_promoted(tmp_path: Path, run_cli):
    database = tmp_path / "tasks.db"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT)")
    connection.execute("CREATE INDEX tasks_title ON tasks(title)")
    connection.executemany("INSERT INTO tasks(title) VALUES (?)", [(f"title {i:06}",) for i in range(5000)])
    connection.commit()
    index_root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tasks_title'").fetchone()[0]
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    with database.open("r+b") as handle:  # wipe the index's root page: the table stays readable
        handle.seek((index_root - 1) * page_size)
        handle.write(bytes(page_size))

    result = run_cli("backup", "--db", database, "--dir", tmp_path / "b")
    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert "failed integrity_check" in result.stderr and "kept aside as" in result.stderr
    assert list_backups(tmp_path / "b") == []
    [kept] = (tmp_path / "b" / "failed").iterdir()
    assert kept.name.startswith("tasks-") and kept.name.endswith(".sqlite3")
    assert result.stderr.splitlines()[0].endswith(f"kept aside as {kept}")
    assert [line["result"] for line in read_lines(tmp_path / "b" / "backup.log")] == ["failed"]


def test_names_with_spaces_and_non_ascii_work(tmp_path: Path, run_cli):
    folder = tmp_path / "données de test"
    folder.mkdir()
    database = create_tasks_database(folder / "tâches du jour.db")
    target = tmp_path / "sauvegardes ü"
    result = run_cli("backup", "--db", database, "--dir", target)
    assert result.exit_code == ExitCode.OK, result.stderr
    [record] = list_backups(target)
    assert record.name.startswith("tâches du jour-")
    verify = run_cli("backups", "verify", "--all", "--dir", target, "--db", database)
    assert verify.exit_code == ExitCode.OK
    assert f"ok     {record.name}" in verify.stdout


def test_a_database_locked_by_a_writer_fails_busy_after_the_timeout(tmp_path: Path, run_cli):
    database = create_tasks_database(tmp_path / "tasks.db", wal=False)  # rollback journal: writers lock out readers
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); c.execute('INSERT INTO tasks(title) VALUES (1)')\n"
         "print('locked', flush=True); time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        result = run_cli("backup", "--db", database, "--dir", tmp_path / "b", "--busy-timeout", "1s")
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == ExitCode.BUSY
    assert "stayed locked" in result.stderr
    assert elapsed < 30  # it gave up instead of retrying forever
    assert list_backups(tmp_path / "b") == []


def test_an_unknown_config_key_names_the_file_and_the_key(run_cli, tmp_path: Path):
    config = tmp_path / "railguard.toml"
    config.write_text('[apps.tasks.backup]\ncompresion = "zstd"\n')
    result = run_cli("backup")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == "error: railguard.toml: apps.tasks.backup.compresion: unknown key"


def test_a_bad_config_value_names_the_key_and_the_expected_form(run_cli, tmp_path: Path):
    (tmp_path / "railguard.toml").write_text('[apps.tasks.backup]\ncompression = "lz4"\n')
    result = run_cli("backup")
    assert result.exit_code == ExitCode.USAGE
    assert "apps.tasks.backup.compression: Input should be 'zstd', 'gzip' or 'none'" in result.stderr


def test_a_bad_flag_value_names_the_flag(tasks_db: Path, run_cli, tmp_path: Path):
    result = run_cli("backup", "--db", tasks_db, "--busy-timeout", "soon")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: --busy-timeout: expected a duration")


def test_invalid_toml_is_a_usage_error(run_cli, tmp_path: Path):
    (tmp_path / "railguard.toml").write_text("[apps.tasks\n")
    result = run_cli("backup")
    assert result.exit_code == ExitCode.USAGE
    assert "railguard.toml: not valid TOML" in result.stderr


def test_a_write_error_in_the_copy_points_at_the_backup_directory(tmp_path: Path, fill_with_random_rows):
    """A file-size limit makes SQLite's own write fail ("disk I/O error"), like a failing disk."""
    import resource
    import signal

    database = create_tasks_database(tmp_path / "tasks.db")
    fill_with_random_rows(database, megabytes=8)
    directory = tmp_path / "b"

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))

    result = subprocess.run([sys.executable, "-m", "railguard", "backup", "--db", str(database), "--dir",
                             str(directory)], capture_output=True, text=True, preexec_fn=limit_file_size)
    assert result.returncode == ExitCode.ERROR, result.stderr
    first, hint = result.stderr.splitlines()[:2]
    assert f"into {directory}" in first and first.endswith("older backups are untouched")
    assert hint.startswith(f"hint: Check free space and file size limits in {directory}")
    assert list_backups(directory) == [] and [p for p in directory.iterdir() if ".tmp-" in p.name] == []


def test_disk_full_while_the_manifest_is_written_leaves_no_data_file_without_it(tmp_path: Path, run_cli):
    database = create_tasks_database(tmp_path / "tasks.db", 3000, wal=False)
    settings = BackupSettings(directory=tmp_path / "small", compression="none")
    page = 4096
    with mounted("tmpfs", tmp_path / "small", "size=4m") as small:
        older = take_backup(database, settings, now=NOW)
        data_pages = -(-older.path.stat().st_size // page)
        # Fill the disk until exactly the next data file fits: its manifest (one more page) does not.
        free = os.statvfs(small).f_bavail * page
        with open(small / "filler", "wb") as filler:
            filler.write(b"\0" * (free - data_pages * page))
        assert os.statvfs(small).f_bavail == data_pages

        result = run_cli("backup", "--db", database, "--dir", small, "--compression", "none", "--no-prune")

        assert result.exit_code == ExitCode.ERROR, result.stderr
        assert result.stderr.splitlines()[0] == (f"error: no space left in {small} while writing the backup; "
                                                 "older backups are untouched")
        records = list_backups(small, "tasks")
        assert [(r.name, r.status) for r in records] == [(older.manifest.name, "ok")]
        assert sorted(p.name for p in small.iterdir() if not p.name.startswith(".")) == sorted(
            ["backup.log", "filler", older.path.name, f"{older.manifest.name}.manifest.json"])
        assert [p.name for p in small.iterdir() if ".tmp-" in p.name] == []


def test_a_fifo_as_the_database_is_refused_at_once(run_cli, tmp_path: Path):
    fifo = tmp_path / "tasks.db"
    os.mkfifo(fifo)
    result = run_cli("backup", "--db", fifo, "--dir", tmp_path / "b")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == f"error: database {fifo} is not a regular file"
