"""``railguard.durable.WorkDirectory``: where railguard works in a directory another user can write.

That user can rename the work directory within its parent and plant a link at its old name
(the only move the kernel allows them on a 0700 directory they do not own). Everything railguard
does afterwards goes through the directory's descriptor, so it still lands in its own directory.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from railguard.durable import WorkDirectory, remove_stale_work_directories


def _swap(workspace: WorkDirectory, decoy: Path) -> Path:
    """What the other user does: move our directory aside, plant a link to theirs at its name."""
    moved = workspace.parent / ".moved-aside"
    os.rename(workspace.path, moved)
    os.symlink(decoy, workspace.path)
    return moved


def test_files_reach_their_final_name_from_the_real_directory_after_a_swap(tmp_path: Path) -> None:
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    parent_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with WorkDirectory(tmp_path) as workspace:
            fd = workspace.create("copy")
            os.write(fd, b"ours")
            os.close(fd)
            moved = _swap(workspace, decoy)

            # SQLite can still reach the real directory through the route.
            connection = sqlite3.connect(workspace.route("made-by-sqlite.db"))
            connection.execute("CREATE TABLE t (x)")
            connection.close()
            workspace.move_out("copy", parent_fd, "final")

        assert (tmp_path / "final").read_bytes() == b"ours"
        assert list(decoy.iterdir()) == []
        assert os.path.islink(tmp_path / workspace.name)  # the planted link: not ours to remove
        assert list(moved.iterdir()) == []  # closing emptied our directory, wherever it went
    finally:
        os.close(parent_fd)


def test_a_dead_runs_work_directory_is_removed_and_a_live_ones_is_kept(tmp_path: Path) -> None:
    live = WorkDirectory(tmp_path)
    try:
        dead = tmp_path / ".railguard-work.tmp-999999999-abcdef"
        dead.mkdir(mode=0o700)
        (dead / "raw.sqlite3").write_bytes(b"plaintext")
        planted = tmp_path / ".railguard-work.tmp-999999998-abcdef"
        os.symlink(tmp_path / "elsewhere", planted)

        assert remove_stale_work_directories(tmp_path) == [dead]
        assert live.path.is_dir() and os.path.islink(planted)
    finally:
        live.close()
    assert not live.path.exists()
