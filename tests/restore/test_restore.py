"""``railguard restore``: what it puts back, and everything it refuses."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from restore.conftest import App, add_rows, dump, file_state, make_app

from railguard.errors import ExitCode
from railguard.logfmt import read_lines
from railguard.restore.holders import find_holders, lock_holders


def journal_mode(database: Path) -> str:
    connection = sqlite3.connect(database)
    try:
        return connection.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        connection.close()


def test_restore_puts_back_exactly_the_backed_up_database(app: App, run_cli) -> None:
    before = dump(app.database)
    backup = app.backup()
    add_rows(app.database, ["written after the backup"])
    after_backup = dump(app.database)

    result = run_cli("--config", app.config, "restore")

    assert result.exit_code == ExitCode.OK, result.stderr
    assert dump(app.database) == before
    # ...and the stock tools agree: zstd -d of the stored file dumps to the same text.
    stock = app.root / "stock.sqlite3"
    subprocess.run(["zstd", "-q", "-d", str(backup), "-o", str(stock)], check=True)
    assert dump(stock) == before
    assert journal_mode(app.database) == "wal"  # the source ran in WAL; the stored copy did not
    safety = [path for path in app.database.parent.iterdir() if ".before-restore-" in path.name]
    assert len(safety) == 1 and dump(safety[0]) == after_backup
    assert f"restored {backup.name.split('.')[0]} → {app.database}" in result.stdout
    assert "curl -fsS http://127.0.0.1:3000/health" in result.stdout
    assert {path.name for path in app.database.parent.iterdir()} == {"tasks.db", safety[0].name}


def test_restore_keeps_rollback_journal_mode_when_the_source_used_it(tmp_path: Path, run_cli) -> None:
    app = make_app(tmp_path, wal=False)
    app.backup()
    assert run_cli("--config", app.config, "restore").exit_code == ExitCode.OK
    assert journal_mode(app.database) == "delete"


def test_restore_includes_what_the_old_database_had_only_in_its_wal_in_the_safety_copy(app: App, run_cli) -> None:
    app.backup()
    # A process that dies without closing leaves committed rows only in tasks.db-wal.
    script = ("import sqlite3, os, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_autocheckpoint=0');"
              "c.execute(\"INSERT INTO tasks(title) VALUES ('only in the wal')\"); c.commit(); os._exit(0)")
    subprocess.run([os.sys.executable, "-c", script, str(app.database)], check=True)
    assert (app.database.parent / "tasks.db-wal").stat().st_size > 0

    assert run_cli("--config", app.config, "restore").exit_code == ExitCode.OK

    safety = next(path for path in app.database.parent.iterdir() if ".before-restore-" in path.name)
    assert "only in the wal" in dump(safety)
    assert "only in the wal" not in dump(app.database)
    assert not (app.database.parent / "tasks.db-wal").exists()


def test_restore_to_another_path_leaves_the_live_database_alone(app: App, run_cli) -> None:
    before = dump(app.database)
    app.backup()
    add_rows(app.database, ["live row"])
    live = file_state(app.database.parent)
    copy = app.root / "inspect" / "copy.db"
    copy.parent.mkdir()

    result = run_cli("--config", app.config, "restore", "latest", "--to", copy, "--json")

    assert result.exit_code == ExitCode.OK, result.stderr
    document = json.loads(result.stdout)
    assert document["live_database"] is False and document["safety_copy"] is None
    assert dump(copy) == before
    assert file_state(app.database.parent) == live


def test_restore_keeps_the_owner_and_mode_of_the_database_it_replaces(app: App, run_cli) -> None:
    app.backup()
    os.chmod(app.database, 0o640)
    if os.geteuid() == 0:
        os.chown(app.database, 4321, 4321)
    assert run_cli("--config", app.config, "restore").exit_code == ExitCode.OK
    info = app.database.stat()
    assert info.st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (4321, 4321)


def test_a_damaged_database_is_kept_byte_for_byte_before_it_is_replaced(app: App, run_cli) -> None:
    before = dump(app.database)
    app.backup()
    app.database.write_bytes(b"this is not a database any more" * 100)
    (app.database.parent / "tasks.db-wal").unlink(missing_ok=True)

    result = run_cli("--config", app.config, "restore")

    assert result.exit_code == ExitCode.WARNING, result.stderr
    assert "kept a byte copy instead" in result.stderr
    safety = next(path for path in app.database.parent.iterdir() if ".before-restore-" in path.name)
    assert safety.read_bytes() == b"this is not a database any more" * 100
    assert dump(app.database) == before


def test_restore_is_logged_in_backup_log(app: App, run_cli) -> None:
    backup = app.backup()
    assert run_cli("--config", app.config, "restore").exit_code == ExitCode.OK
    line = read_lines(app.backups / "backup.log")[-1]
    assert line["event"] == "restore" and line["result"] == "ok"
    assert line["backup"] == backup.name.split(".")[0] and line["target"] == str(app.database)


# --- a database in use ------------------------------------------------------------------------

@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_restore_is_refused_while_another_process_holds_the_database(tmp_path: Path, run_cli, holder,
                                                                     wal: bool) -> None:
    app = make_app(tmp_path, wal=wal)
    app.backup()
    add_rows(app.database, ["must survive the refusal"])
    process = holder(app.database)
    before = {name: digest for name, digest in file_state(app.database.parent).items() if not name.endswith("-shm")}

    result = run_cli("--config", app.config, "restore")

    assert result.exit_code == ExitCode.BUSY
    assert f"is in use: process {process.pid} (python" in result.stderr
    assert "hint: Stop the app first" in result.stderr
    after = {name: digest for name, digest in file_state(app.database.parent).items() if not name.endswith("-shm")}
    assert after == before


def test_force_restores_even_while_the_database_is_held_and_says_so(app: App, run_cli, holder) -> None:
    before = dump(app.database)
    app.backup()
    add_rows(app.database, ["newer"])
    process = holder(app.database)

    result = run_cli("--config", app.config, "restore", "--force")

    assert result.exit_code == ExitCode.WARNING
    assert f"replaced while in use: process {process.pid}" in result.stderr
    assert dump(app.database) == before


def test_sqlite_locks_reveal_a_holder_that_proc_cannot_see(app: App, holder, tmp_path: Path) -> None:
    # As when the app runs in another container: no /proc entry, but the same kernel's locks.
    process = holder(app.database)
    empty_proc = tmp_path / "no-proc"
    empty_proc.mkdir()
    assert [h.pid for h in lock_holders(app.database, proc=empty_proc)] == [process.pid]
    assert [h.pid for h in find_holders(app.database, proc=empty_proc)] == [process.pid]
    process.kill()
    process.wait()
    assert find_holders(app.database) == []


# --- bad input ----------------------------------------------------------------------------------

def test_an_unknown_backup_name_lists_the_nearest_names(app: App, run_cli) -> None:
    backup = app.backup()
    name = backup.name.split(".")[0]
    # One digit of the minute off, never the real name (whatever minute the backup was taken in).
    typo = name[:-1] + ("8" if name.endswith("9") else "9")
    result = run_cli("--config", app.config, "restore", typo)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert f"error: no backup named '{typo}'" in result.stderr
    assert f"hint: Did you mean: {name}" in result.stderr


def test_a_corrupt_backup_is_refused_and_nothing_changes(app: App, run_cli) -> None:
    backup = app.backup()
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.write_bytes(bytes(data))
    before = file_state(app.database.parent)

    result = run_cli("--config", app.config, "restore")

    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert "sha256 mismatch" in result.stderr
    assert file_state(app.database.parent) == before


def test_a_backup_without_its_manifest_is_refused(app: App, run_cli) -> None:
    backup = app.backup()
    backup.with_name(backup.name.split(".")[0] + ".manifest.json").unlink()
    result = run_cli("--config", app.config, "restore", backup.name)
    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert "incomplete: no manifest" in result.stderr


def test_restoring_onto_a_directory_is_refused(app: App, run_cli) -> None:
    app.backup()
    result = run_cli("--config", app.config, "restore", "--to", app.root)
    assert result.exit_code == ExitCode.USAGE
    assert f"error: {app.root} is a directory, not a database file" in result.stderr


def test_restoring_into_a_missing_directory_is_refused(app: App, run_cli) -> None:
    app.backup()
    result = run_cli("--config", app.config, "restore", "--to", app.root / "nowhere" / "tasks.db")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "mkdir -p" in result.stderr


def test_a_refusal_is_one_json_document_for_scripts(app: App, run_cli, holder) -> None:
    app.backup()
    holder(app.database)
    result = run_cli("--config", app.config, "restore", "--json")
    assert result.exit_code == ExitCode.BUSY
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["exit_code"] == ExitCode.BUSY
    assert document["hint"].startswith("Stop the app first")


def test_restore_has_help_that_points_to_its_docs(run_cli) -> None:
    result = run_cli("restore", "--help")
    assert result.exit_code == 0 and "docs/restore.md" in result.stdout
    assert (Path(__file__).resolve().parents[2] / "docs" / "restore.md").is_file()
