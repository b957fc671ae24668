"""railguard backup: a verified, compressed, named, logged copy."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from unittest.mock import ANY

import pytest

from railguard.backup import list_backups, take_backup
from railguard.backup.catalog import resolve_backup
from railguard.config import BackupSettings
from railguard.errors import ExitCode
from railguard.logfmt import read_lines

NOW = datetime(2026, 11, 27, 3, 30, 12, tzinfo=timezone.utc)


def rows_of(database: Path) -> list[tuple]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute("SELECT id, title, done FROM tasks ORDER BY id").fetchall()
    finally:
        connection.close()


def test_backup_writes_a_verified_compressed_file_a_manifest_and_a_log_line(tasks_db: Path, run_cli, tmp_path):
    result = run_cli("backup", "--db", tasks_db, "--dir", tmp_path / "backups")

    assert result.exit_code == ExitCode.OK, result.stderr
    directory = tmp_path / "backups"
    [record] = list_backups(directory, "tasks")
    assert record.is_good
    assert record.data_path.name.endswith(".sqlite3.zst")
    manifest = json.loads(record.manifest_path.read_text())
    assert manifest["verified"] is True
    assert manifest["check_result"] == "ok"
    assert manifest["compression"] == "zstd"
    assert manifest["journal_mode"] == "wal"
    assert manifest["size_stored"] == record.data_path.stat().st_size
    assert manifest["page_count"] * manifest["page_size"] == manifest["size_raw"]
    [line] = read_lines(directory / "backup.log")
    assert line["result"] == "ok" and line["file"] == record.data_path.name
    assert "backup " in result.stdout and "integrity_check ok" in result.stdout


def test_backup_files_are_private_and_the_directory_is_0700(tasks_db: Path, settings: BackupSettings):
    result = take_backup(tasks_db, settings, now=NOW)
    assert stat.S_IMODE(settings.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((settings.directory / f"{result.manifest.name}.manifest.json").stat().st_mode) == 0o600


def test_file_name_follows_the_plan_in_the_configured_time_zone(tasks_db: Path, settings: BackupSettings):
    result = take_backup(tasks_db, settings, now=NOW, tz="Europe/Madrid")
    assert result.path.name == "tasks-20261127-0430.sqlite3.zst"


def test_a_second_backup_in_the_same_minute_gets_a_suffix_and_overwrites_nothing(tasks_db: Path, settings):
    first = take_backup(tasks_db, settings, now=NOW)
    before = first.path.read_bytes()
    second = take_backup(tasks_db, settings, now=NOW)
    third = take_backup(tasks_db, settings, now=NOW)
    assert [first.path.name, second.path.name, third.path.name] == [
        "tasks-20261127-0330.sqlite3.zst", "tasks-20261127-0330-2.sqlite3.zst", "tasks-20261127-0330-3.sqlite3.zst"]
    assert first.path.read_bytes() == before


@pytest.mark.parametrize("compression, tool", [("zstd", ["zstd", "-d", "-q"]), ("gzip", ["gunzip"])])
def test_backups_restore_with_stock_tools(tasks_db: Path, tmp_path: Path, compression: str, tool: list[str]):
    settings = BackupSettings(directory=tmp_path / "backups", compression=compression, level=9)
    result = take_backup(tasks_db, settings, now=NOW)
    subprocess.run([*tool, str(result.path)], check=True)
    restored = result.path.with_name(result.path.name.rsplit(".", 1)[0])
    assert rows_of(restored) == rows_of(tasks_db)
    check = subprocess.run(["sqlite3", str(restored), "PRAGMA integrity_check"], capture_output=True, text=True)
    assert check.stdout.strip() == "ok"


def test_gzip_backup_is_a_plain_gzip_stream(tasks_db: Path, tmp_path: Path):
    settings = BackupSettings(directory=tmp_path / "backups", compression="gzip")
    result = take_backup(tasks_db, settings, now=NOW)
    assert gzip.decompress(result.path.read_bytes())[:16] == b"SQLite format 3\x00"


def test_uncompressed_backup_is_the_database_itself(tasks_db: Path, tmp_path: Path):
    settings = BackupSettings(directory=tmp_path / "backups", compression="none")
    result = take_backup(tasks_db, settings, now=NOW)
    assert result.path.name == "tasks-20261127-0330.sqlite3"
    assert rows_of(result.path) == rows_of(tasks_db)


def test_vacuum_into_method_gives_the_same_content(tasks_db: Path, tmp_path: Path):
    settings = BackupSettings(directory=tmp_path / "backups", method="vacuum-into", compression="none")
    result = take_backup(tasks_db, settings, now=NOW)
    assert result.manifest.method == "vacuum-into"
    assert rows_of(result.path) == rows_of(tasks_db)


def test_backup_copy_never_leaves_wal_files_beside_it(tasks_db: Path, settings: BackupSettings):
    take_backup(tasks_db, settings, now=NOW)
    names = sorted(p.name for p in settings.directory.iterdir())
    assert not [name for name in names if name.endswith(("-wal", "-shm"))]


def test_backup_includes_transactions_still_in_the_wal(tmp_path: Path, settings: BackupSettings):
    database = tmp_path / "tasks.db"
    app = sqlite3.connect(database)
    app.execute("PRAGMA journal_mode=WAL")
    app.execute("PRAGMA wal_autocheckpoint=0")  # keep every commit in -wal, as a busy app would
    app.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT, done INTEGER)")
    app.executemany("INSERT INTO tasks(title, done) VALUES (?, 0)", [(f"t{i}",) for i in range(500)])
    app.commit()
    assert database.with_name("tasks.db-wal").stat().st_size > 0
    settings.compression = "none"
    result = take_backup(database, settings, now=NOW)
    assert len(rows_of(result.path)) == 500
    assert result.manifest.wal_bytes > 0
    app.close()


def test_leftover_temporary_files_from_a_crashed_run_are_removed(tasks_db: Path, settings: BackupSettings):
    settings.directory.mkdir(mode=0o700)
    stale = settings.directory / ".tasks-20261126-0330.sqlite3.zst.tmp-424242"
    stale.write_bytes(b"half a backup")
    users_file = settings.directory / "notes.txt"
    users_file.write_text("mine")
    take_backup(tasks_db, settings, now=NOW)
    assert not stale.exists()
    assert users_file.read_text() == "mine"


def test_a_second_run_while_one_holds_the_lock_exits_busy(tasks_db: Path, run_cli, tmp_path: Path):
    directory = tmp_path / "backups"
    directory.mkdir()
    with open(directory / ".tasks.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("backup", "--db", tasks_db, "--dir", directory)
    assert result.exit_code == ExitCode.BUSY
    assert "another railguard run" in result.stderr
    assert list_backups(directory) == []


def test_json_report_for_scripts(tasks_db: Path, run_cli, tmp_path: Path):
    result = run_cli("backup", "--db", tasks_db, "--dir", tmp_path / "b", "--compression", "gzip", "--json")
    assert result.exit_code == ExitCode.OK
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["manifest"]["compression"] == "gzip"
    assert Path(report["file"]).exists()


def test_backups_list_shows_every_backup_and_why_one_is_not_good(tasks_db: Path, run_cli, tmp_path: Path):
    directory = tmp_path / "backups"
    settings = BackupSettings(directory=directory)
    take_backup(tasks_db, settings, now=NOW)
    second = take_backup(tasks_db, settings, now=NOW)
    (directory / f"{second.manifest.name}.manifest.json").unlink()

    listing = run_cli("backups", "list", "--dir", directory, "--json")
    entries = json.loads(listing.stdout)["backups"]
    assert [(e["name"], e["good"]) for e in entries] == [("tasks-20261127-0330", True),
                                                         ("tasks-20261127-0330-2", False)]
    assert entries[1]["status"] == "incomplete: no manifest"
    table = run_cli("backups", "list", "--dir", directory)
    assert "tasks-20261127-0330-2" in table.stdout and "no (incomplete: no manifest)" in table.stdout


def test_backups_verify_detects_bit_rot(tasks_db: Path, run_cli, tmp_path: Path):
    directory = tmp_path / "backups"
    settings = BackupSettings(directory=directory)
    good = take_backup(tasks_db, settings, now=NOW)
    rotten = take_backup(tasks_db, settings, now=NOW)
    data = bytearray(rotten.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    rotten.path.write_bytes(bytes(data))

    result = run_cli("backups", "verify", "--all", "--dir", directory)
    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert f"ok     {good.manifest.name}" in result.stdout
    assert f"FAILED {rotten.manifest.name}: backup {rotten.manifest.name}: sha256 mismatch" in result.stdout
    assert run_cli("backups", "verify", good.manifest.name, "--dir", directory).exit_code == ExitCode.OK


def test_backups_verify_catches_damage_that_the_hash_cannot(tasks_db: Path, tmp_path: Path, run_cli):
    """A manifest rewritten to match damaged data still fails: decompression and integrity_check run."""
    directory = tmp_path / "backups"
    result = take_backup(tasks_db, BackupSettings(directory=directory, compression="none"), now=NOW)
    data = bytearray(result.path.read_bytes())
    page_size = result.manifest.page_size
    data[page_size + 8: 2 * page_size] = bytes(page_size - 8)  # wipe the cells of page 2
    result.path.write_bytes(bytes(data))
    manifest_path = directory / f"{result.manifest.name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    import hashlib

    manifest["sha256"] = manifest["raw_sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    manifest_path.write_text(json.dumps(manifest))

    verify = run_cli("backups", "verify", "latest", "--dir", directory)
    assert verify.exit_code == ExitCode.VERIFY_FAILED
    assert "integrity_check failed" in verify.stdout


def test_verify_of_an_unknown_name_suggests_the_nearest(tasks_db: Path, tmp_path: Path, run_cli):
    directory = tmp_path / "backups"
    take_backup(tasks_db, BackupSettings(directory=directory), now=NOW)
    result = run_cli("backups", "verify", "tasks-20261127-0331", "--dir", directory)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "no backup named 'tasks-20261127-0331'" in result.stderr
    assert "Did you mean: tasks-20261127-0330" in result.stderr


def test_latest_means_the_newest_good_backup(tasks_db: Path, tmp_path: Path):
    directory = tmp_path / "backups"
    settings = BackupSettings(directory=directory)
    first = take_backup(tasks_db, settings, now=NOW)
    second = take_backup(tasks_db, settings, now=NOW)
    (directory / f"{second.manifest.name}.manifest.json").unlink()
    assert resolve_backup(directory, "tasks", "latest").name == first.manifest.name


def test_settings_come_from_railguard_toml_with_flags_overriding(tasks_db: Path, run_cli, tmp_path: Path):
    (tmp_path / "railguard.toml").write_text(
        f'timezone = "UTC"\n[apps.tasks]\ndatabase = "{tasks_db}"\n'
        f'[apps.tasks.backup]\ndirectory = "{tmp_path / "from-config"}"\ncompression = "gzip"\n')
    assert run_cli("backup").exit_code == ExitCode.OK
    assert [p.suffix for p in (tmp_path / "from-config").glob("*.sqlite3.*")] == [".gz"]
    assert run_cli("backup", "--compression", "none").exit_code == ExitCode.OK
    assert len(list((tmp_path / "from-config").glob("*.sqlite3"))) == 1


def test_the_source_database_is_left_exactly_as_it_was(tasks_db: Path, settings: BackupSettings):
    before = rows_of(tasks_db)
    mode = os.stat(tasks_db).st_mode
    take_backup(tasks_db, settings, now=NOW)
    assert rows_of(tasks_db) == before
    assert os.stat(tasks_db).st_mode == mode


def test_listing_while_a_prune_removes_a_backup_skips_it_instead_of_failing(tasks_db: Path, settings, monkeypatch):
    from railguard.backup import catalog

    gone = take_backup(tasks_db, settings, now=NOW)
    kept = take_backup(tasks_db, settings, now=NOW)
    real_read = catalog.Manifest.read

    def read_racing_a_prune(path: Path):
        if path.name.startswith(gone.manifest.name + "."):
            path.unlink()  # the prune: manifest first, then the data file
            gone.path.unlink()
        return real_read(path)

    monkeypatch.setattr(catalog.Manifest, "read", read_racing_a_prune)
    assert [record.name for record in list_backups(settings.directory, "tasks")] == [kept.manifest.name]


def test_a_sigterm_after_the_command_finished_does_not_interrupt_the_exit(run_cli):
    import signal

    from railguard.cli import root

    assert run_cli("--version").exit_code == 0
    root._raise_interrupt(signal.SIGTERM, None)  # nothing runs now: no KeyboardInterrupt on the way out


def test_no_prune_flag_keeps_every_backup_of_the_day(tasks_db: Path, run_cli, tmp_path: Path):
    directory = tmp_path / "backups"
    # --scheduled, as the daemon runs them: a backup taken by hand is protected from prune
    # for [backup.keep_manual] (tests/retention/test_protection.py).
    for _ in range(2):
        assert run_cli("backup", "--db", tasks_db, "--dir", directory, "--no-prune",
                       "--scheduled").exit_code == ExitCode.OK
    assert len(list_backups(directory, "tasks")) == 2
    # With prune (the default), 7 daily + 4 weekly keeps one backup per day: the newest.
    assert run_cli("backup", "--db", tasks_db, "--dir", directory, "--scheduled").exit_code == ExitCode.OK
    assert len(list_backups(directory, "tasks")) == 1


#: ``railguard backups verify`` killed with SIGKILL the moment its decompressed copy is complete.
KILLED_VERIFY = """
import os, signal, sys
import railguard.backup.verify as verify
verify.check_database = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
from railguard.cli import cli
cli(["backups", "verify", "--all", "--db", sys.argv[1], "--dir", sys.argv[2]])
"""


def _kill_a_verify(database: Path, directory: Path) -> Path:
    """Run a verify that dies with its plaintext copy on disk; returns that copy."""
    completed = subprocess.run([sys.executable, "-c", KILLED_VERIFY, str(database), str(directory)],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == -signal.SIGKILL, completed.stderr
    leftovers = [p for p in directory.rglob("*") if p.is_file() and (p.parent != directory or "verify-tmp" in p.name)]
    assert len(leftovers) == 1, sorted(directory.rglob("*"))
    return leftovers[0]


@pytest.mark.parametrize("next_run", ["backup", "verify", "prune"])
def test_a_killed_verify_leaves_a_private_copy_that_the_next_run_removes(tasks_db: Path, run_cli, tmp_path: Path,
                                                                         next_run: str):
    directory = tmp_path / "backups"
    take_backup(tasks_db, BackupSettings(directory=directory), now=NOW)
    old = os.umask(0o022)
    try:
        leftover = _kill_a_verify(tasks_db, directory)
    finally:
        os.umask(old)
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o600  # plaintext of the whole database: nobody else's
    assert leftover.parent == directory or stat.S_IMODE(leftover.parent.stat().st_mode) == 0o700

    command = {"backup": ["backup", "--no-prune"], "verify": ["backups", "verify"],
               "prune": ["prune", "--keep-last", "5"]}[next_run]
    result = run_cli(*command, "--db", tasks_db, "--dir", directory) if next_run != "prune" else \
        run_cli("--config", _config(tmp_path, tasks_db, directory), *command)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert not leftover.exists()
    assert [p.name for p in directory.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")] == []


def _config(tmp_path: Path, database: Path, directory: Path) -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'[apps.tasks]\ndatabase = "{database}"\n[apps.tasks.backup]\ndirectory = "{directory}"\n',
                    encoding="utf-8")
    return path


def test_verify_all_reports_a_backup_that_a_prune_removed_meanwhile(tasks_db: Path, run_cli, tmp_path: Path,
                                                                     monkeypatch):
    """verify --all lists, then verifies one by one; a prune between the two removes the oldest."""
    from railguard.backup import verify
    from railguard.retention import Policy, prune_backups

    directory = tmp_path / "backups"
    settings = BackupSettings(directory=directory)
    pruned = take_backup(tasks_db, settings, now=NOW)
    kept = take_backup(tasks_db, settings, now=NOW)
    real_list = verify.list_backups

    def list_then_a_prune_runs(*args, **kwargs):
        listed = real_list(*args, **kwargs)
        assert prune_backups(directory, "tasks", Policy(last=1), now=NOW, tz="UTC").removed == [pruned.manifest.name]
        return listed

    monkeypatch.setattr(verify, "list_backups", list_then_a_prune_runs)
    result = run_cli("backups", "verify", "--all", "--dir", directory, "--db", tasks_db, "--json")

    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["results"] == [
        {"name": pruned.manifest.name, "ok": True, "result": "gone"},
        {"name": kept.manifest.name, "ok": True, "result": "ok", "seconds": ANY},
    ]


def test_verifying_every_backup_reports_each_one_and_a_damaged_one_stops_no_other(tasks_db: Path, tmp_path: Path):
    from railguard.backup.verify import verify_backups
    from railguard.errors import NotFound

    directory = tmp_path / "backups"
    settings = BackupSettings(directory=directory)
    first, damaged, last = (take_backup(tasks_db, settings, now=NOW) for _ in range(3))
    with damaged.path.open("r+b") as data:  # one flipped byte in the stored file
        data.seek(100)
        byte = data.read(1)
        data.seek(100)
        data.write(bytes([byte[0] ^ 0xFF]))

    outcomes = verify_backups(directory, "tasks", None, every=True)

    assert [(o.name, o.ok) for o in outcomes] == [(first.manifest.name, True), (damaged.manifest.name, False),
                                                  (last.manifest.name, True)]
    assert "sha256" in outcomes[1].result and outcomes[1].seconds is None
    assert outcomes[0].as_dict() == {"name": first.manifest.name, "ok": True, "result": "ok",
                                     "seconds": round(outcomes[0].seconds or 0, 3)}
    (latest,) = verify_backups(directory, "tasks", "latest")
    assert latest.name == last.manifest.name and latest.ok
    with pytest.raises(NotFound):
        verify_backups(directory, "tasks", "tasks-20000101-0000")
