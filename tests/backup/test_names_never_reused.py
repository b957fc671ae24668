"""A backup name is never given twice, not even after prune removed the backup that had it.

Issue 14 item 9: three backups in one minute (or an ``every 20s`` schedule), then a prune, and
the next backup of that minute got a name a removed backup had had, so a destination that
still held the old copy under that name was "already there" for a different backup.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from railguard.backup import list_backups, take_backup
from railguard.config import BackupSettings
from railguard.retention import Policy, prune_backups

NOW = datetime(2026, 11, 27, 3, 30, 5, tzinfo=timezone.utc)


def test_after_a_prune_the_next_backup_of_the_minute_gets_a_new_name(tasks_db: Path, tmp_path: Path) -> None:
    settings = BackupSettings(directory=tmp_path / "backups")
    given = [take_backup(tasks_db, settings, now=NOW).manifest.name for _ in range(3)]
    prune_backups(settings.directory, "tasks", Policy(last=1), now=NOW, tz="UTC")
    assert [record.name for record in list_backups(settings.directory, "tasks")] == [given[-1]]

    after = take_backup(tasks_db, settings, now=NOW).manifest.name

    assert given == ["tasks-20261127-0330", "tasks-20261127-0330-2", "tasks-20261127-0330-3"]
    assert after == "tasks-20261127-0330-4"


def test_a_name_only_backup_log_remembers_is_not_given_again(tasks_db: Path, tmp_path: Path) -> None:
    settings = BackupSettings(directory=tmp_path / "backups")
    name = take_backup(tasks_db, settings, now=NOW).manifest.name
    for path in settings.directory.glob(f"{name}.*"):  # removed by hand: only backup.log remembers it
        path.unlink()
    assert take_backup(tasks_db, settings, now=NOW).manifest.name == f"{name}-2"


def test_free_id_counts_failed_copies_and_ignores_other_minutes_and_stems(tmp_path: Path) -> None:
    from railguard.backup.naming import free_id

    directory = tmp_path / "backups"
    (directory / "failed").mkdir(parents=True)
    (directory / "failed" / "tasks-20261127-0330-5.sqlite3").write_bytes(b"kept aside")
    (directory / "tasks-20261127-0331-9.sqlite3.zst").write_bytes(b"another minute")
    (directory / "other-20261127-0330-7.sqlite3.zst").write_bytes(b"another database")
    assert str(free_id(directory, "tasks", NOW, ["tasks-20261127-0330-3.sqlite3.zst"])) == "tasks-20261127-0330-6"
    assert str(free_id(tmp_path / "nothing", "tasks", NOW)) == "tasks-20261127-0330"
