"""Restores that fail half-way, on real filesystems: a read-only mount, a full tmpfs, kill -9.

Each must leave the database exactly as it was (or, for kill -9, as it was or as restored),
never a mix and never without its committed rows. Mounts need root; without it these tests
are skipped with the reason.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from restore.conftest import App, add_rows, dump, file_state, make_app

from railguard.errors import ExitCode


def _mount(*args: str) -> None:
    completed = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        pytest.skip(f"cannot mount here ({completed.stderr.strip()}); these tests need root")


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount at the end, innermost last."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_target_directory_that_is_not_writable_is_refused(tmp_path: Path, run_cli, mounts) -> None:
    app = make_app(tmp_path)
    app.backup()
    add_rows(app.database, ["after the backup"])
    data = app.database.parent
    before = file_state(data)
    _mount("--bind", str(data), str(data))
    mounts.append(data)
    _mount("-o", "remount,ro,bind", str(data))

    result = run_cli("--config", app.config, "restore")

    assert result.exit_code == ExitCode.ERROR
    assert f"error: cannot write in {data}" in result.stderr
    assert file_state(data) == before


def _tmpfs_used(point: Path) -> int:
    stats = os.statvfs(point)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


@pytest.mark.parametrize("fails_in", ["the restored copy", "the safety copy"])
def test_a_disk_that_fills_up_during_restore_leaves_the_old_database_intact(tmp_path: Path, run_cli, mounts,
                                                                             fails_in: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(data))
    mounts.append(data)
    app = make_app(tmp_path, rows=20000, data_dir=data)
    backup = app.backup()
    add_rows(app.database, [f"row {i} written after the backup" for i in range(2000)])
    connection = sqlite3.connect(app.database)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    old_dump = dump(app.database)
    before = file_state(data)
    raw_size = int(backup.stat().st_size and _raw_size(app))
    old_size = app.database.stat().st_size
    # Room for part of the restored copy, or for all of it (plus its -wal and -shm) but not the safety copy.
    room = raw_size // 2 if fails_in == "the restored copy" else raw_size + 128 * 1024
    assert room < raw_size + old_size
    _mount("-o", f"remount,size={_tmpfs_used(data) + room}", str(data))

    result = run_cli("--config", app.config, "restore")

    assert result.exit_code == ExitCode.ERROR, result.stderr
    assert f"error: no space left in {data} while restoring; tasks.db is unchanged" in result.stderr
    assert file_state(data) == before
    assert dump(app.database) == old_dump


def _raw_size(app: App) -> int:
    from railguard.backup import list_backups

    manifest = list_backups(app.backups)[-1].manifest
    assert manifest is not None
    return manifest.size_raw


# --- kill -9 --------------------------------------------------------------------------------------

def _fingerprint(database: Path) -> tuple[str, int, str]:
    connection = sqlite3.connect(database)
    try:
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
        count, newest = connection.execute("SELECT count(*), max(id) FROM tasks").fetchone()
        marker = connection.execute("SELECT title FROM tasks WHERE title LIKE 'marker:%'").fetchone()[0]
        return check, count, f"{marker}@{newest}"
    finally:
        connection.close()


def _restore_process(app: App) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(app.config), "restore"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_9_during_restore_leaves_the_old_database_or_the_new_one_never_a_mix(tmp_path: Path) -> None:
    app = make_app(tmp_path, rows=60000)
    add_rows(app.database, ["marker:new"])
    app.backup()
    new = _fingerprint(app.database)

    # The "old" database: different rows, the newest of them only in its -wal (a writer that died
    # without a checkpoint), as a live WAL database usually is.
    add_rows(app.database, ["marker:old"] + [f"old row {i}" for i in range(500)])
    connection = sqlite3.connect(app.database)
    connection.execute("DELETE FROM tasks WHERE title = 'marker:new'")
    connection.commit()
    connection.close()
    script = ("import sqlite3, os, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_autocheckpoint=0');"
              "c.executemany('INSERT INTO tasks(title) VALUES (?)', [('wal only %d' % i,) for i in range(300)]);"
              "c.commit(); os._exit(0)")
    subprocess.run([sys.executable, "-c", script, str(app.database)], check=True)
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    for name in ("tasks.db", "tasks.db-wal"):
        shutil.copy2(app.database.parent / name, pristine / name)
    scratch = tmp_path / "scratch"
    shutil.copytree(pristine, scratch)  # reading a WAL database checkpoints it: keep the pristine one pristine
    old = _fingerprint(scratch / "tasks.db")
    assert old != new and old[1] == new[1] + 800

    def reset() -> None:
        for path in app.database.parent.glob("tasks.db*"):
            if ".before-restore-" not in path.name:
                path.unlink()
        for name in ("tasks.db", "tasks.db-wal"):
            shutil.copy2(pristine / name, app.database.parent / name)

    reset()
    started = time.monotonic()
    full = _restore_process(app)
    assert full.wait(timeout=60) == 0, full.stderr.read() if full.stderr else ""
    duration = time.monotonic() - started
    assert _fingerprint(app.database) == new

    # Kills spread over the run (the first ~40% is the interpreter starting), jittered.
    rng = random.Random(9)
    outcomes = []
    for fraction in (0.4, 0.5, 0.6, 0.68, 0.76, 0.84, 0.9, 0.96):
        reset()
        process = _restore_process(app)
        time.sleep(max(0.0, fraction + rng.uniform(-0.04, 0.04)) * duration)
        process.kill()  # SIGKILL: no clean-up code runs
        process.wait()
        state = _fingerprint(app.database)
        assert state in (old, new), f"a killed restore left {state}; expected {old} or {new}"
        outcomes.append("new" if state == new else "old")

    # Whatever the kills left behind (hidden temporary files) goes with the next restore.
    process = _restore_process(app)
    assert process.wait(timeout=60) == 0
    leftovers = [path.name for path in app.database.parent.iterdir() if path.name.startswith(".")]
    assert leftovers == [], outcomes
