"""A root restore into a directory the app's user can write, attacked by that user.

The app's user must be able to write the database's directory (SQLite creates ``-wal`` and
``-shm`` there), so it can plant names there before a restore that runs as root: links for
every name railguard used to create (``.NAME.sqlite3.verify-tmp-PID``, the safety copy's
``.tmp-PID``), a link as the database, a link as its ``-wal``. Each points at a root-owned 0600
file outside the directory, which must come out of the restore unchanged.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
from restore.conftest import App, add_rows, dump, make_app

from railguard.backup import resolve_backup
from railguard.backup.naming import stem_for
from railguard.errors import ExitCode
from railguard.restore import restore_backup
from railguard.restore.engine import RestoreTargetUnsafe, safety_copy_path

APP_USER = 65534  # nobody
NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)
SECRET = b"root:$6$secret-hash:19000:0:99999:7:::\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attack needs a root restore (CI runs as root)")


class Victim:
    """A root-owned 0600 file outside the database's directory: the attacker's target."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(SECRET)
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)

    def assert_untouched(self) -> None:
        info = os.stat(self.path, follow_symlinks=False)
        assert stat.S_ISREG(info.st_mode)
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600)
        assert self.path.read_bytes() == SECRET


def _hand_to_the_app_user(app: App) -> Path:
    data = app.database.parent
    os.chown(data, APP_USER, APP_USER)
    os.chmod(data, 0o755)
    for path in data.iterdir():
        os.lchown(path, APP_USER, APP_USER)
    return data


def _plant(link: Path, target: Path) -> None:
    """What the app's user does: a symlink of its own, at a name railguard will use."""
    os.symlink(target, link)
    os.lchown(link, APP_USER, APP_USER)


@pytest.fixture
def attacked(tmp_path: Path) -> tuple[App, Victim, str]:
    app = make_app(tmp_path)
    app.backup(NOW.replace(hour=8))
    restored = dump(app.database)
    add_rows(app.database, ["written after the backup"])
    _hand_to_the_app_user(app)
    victim_dir = tmp_path / "etc"
    victim_dir.mkdir(mode=0o700)
    return app, Victim(victim_dir / "shadow"), restored


def _restore(app: App, target: Path | None = None):
    record = resolve_backup(app.backups, stem_for(app.database), "latest")
    return restore_backup(record, target or app.database, now=NOW, tz="UTC")


def test_links_planted_for_every_temporary_name_are_never_followed(attacked) -> None:
    app, victim, restored = attacked
    data = app.database.parent
    record = resolve_backup(app.backups, stem_for(app.database), "latest")
    safety = safety_copy_path(app.database, NOW, "UTC")
    # The exact names the restore used to create, for this pid and the next ones.
    for pid in range(os.getpid(), os.getpid() + 50):
        _plant(data / f".{record.name}.sqlite3.verify-tmp-{pid}", victim.path)
        _plant(data / f".{safety.name}.tmp-{pid}", victim.path)

    result = _restore(app)

    victim.assert_untouched()
    assert stat.S_ISREG(os.lstat(app.database).st_mode), "the database must be the restored file, not a link"
    assert dump(app.database) == restored
    info = os.stat(app.database)
    assert (info.st_uid, info.st_gid) == (APP_USER, APP_USER)  # still the app's database
    assert result.safety_copy is not None and stat.S_ISREG(os.lstat(result.safety_copy).st_mode)
    assert stat.S_IMODE(os.stat(result.safety_copy).st_mode) == 0o600
    assert "written after the backup" in dump(result.safety_copy)


def test_a_link_planted_at_the_safety_copys_name_is_left_alone(attacked) -> None:
    app, victim, restored = attacked
    planted = safety_copy_path(app.database, NOW, "UTC")
    _plant(planted, victim.path)

    result = _restore(app)

    victim.assert_untouched()
    assert os.path.islink(planted)
    assert result.safety_copy == safety_copy_path(app.database, NOW, "UTC", 2)
    assert dump(app.database) == restored


def test_a_database_that_is_another_users_link_is_refused(attacked, run_cli) -> None:
    app, victim, _ = attacked
    app.database.unlink()
    _plant(app.database, victim.path)

    result = run_cli("--config", app.config, "restore")

    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert (f"error: {app.database} is a symbolic link owned by uid {APP_USER}; railguard will not follow "
            f"another user's link") in result.stderr
    victim.assert_untouched()
    assert os.readlink(app.database) == str(victim.path)


@pytest.mark.parametrize("companion", ["-wal", "-shm"])
def test_a_wal_or_shm_that_is_a_link_is_refused_before_sqlite_opens_it(attacked, companion: str) -> None:
    app, victim, _ = attacked
    data = app.database.parent
    for suffix in ("-wal", "-shm"):
        (data / f"tasks.db{suffix}").unlink(missing_ok=True)
    _plant(data / f"tasks.db{companion}", victim.path)
    before = app.database.read_bytes()

    with pytest.raises(RestoreTargetUnsafe, match=f"tasks.db{companion} is not a regular file"):
        _restore(app)

    victim.assert_untouched()
    assert app.database.read_bytes() == before
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []


def test_a_fifo_as_the_restore_target_is_refused_at_once(attacked, run_cli) -> None:
    app, _, _ = attacked
    fifo = app.root / "inspect.db"
    os.mkfifo(fifo)

    result = run_cli("--config", app.config, "restore", "--to", fifo)

    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert f"error: {fifo} is not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_restore_to_a_new_path_creates_a_private_file_whatever_the_umask(attacked, run_cli) -> None:
    app, _, restored = attacked
    copy = app.root / "inspect.db"
    old = os.umask(0o022)
    try:
        result = run_cli("--config", app.config, "restore", "--to", copy)
    finally:
        os.umask(old)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600
    assert dump(copy) == restored
