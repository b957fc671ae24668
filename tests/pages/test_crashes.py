"""kill -9 at every point of a generation or a GC: every earlier generation restores, the next run cleans up."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from railguard.config import BackupSettings
from railguard.durable import WORK_MARK
from railguard.pages.faults import ENVIRONMENT
from railguard.pages.gc import collect_garbage, remove_generations
from railguard.pages.store import generation_names, list_names, objects_of, pack_names

from pages.conftest import Generations, add_rows, contents, run_generation_killed_at


def _work_directories(settings: BackupSettings) -> list[str]:
    return [entry.name for entry in settings.directory.iterdir() if entry.name.startswith(WORK_MARK)]


@pytest.mark.parametrize("point", ["snapshot", "pack", "list", "verified", "published"])
def test_a_backup_killed_at_any_point_leaves_every_generation_restorable(
        point: str, generations: Generations, database: Path, settings: BackupSettings, tmp_path: Path) -> None:
    generations.take()
    first_contents = contents(database)
    connection = sqlite3.connect(database, isolation_level=None)
    add_rows(connection, 5000, 80)
    connection.close()
    assert run_generation_killed_at(point, database, settings, minute=30) == -signal.SIGKILL
    # The killed run left its work directory behind (and, from "pack" on, packs no manifest names;
    # from "list" on, a page list too).
    assert _work_directories(settings)
    orphan_list = point in ("list", "verified")
    assert len(list_names(generations.store)) == (1 if point in ("snapshot", "pack") else 2)
    published = point == "published"
    assert len(generation_names(generations.store)) == (2 if published else 1)
    for manifest in generations.manifests():
        expected = contents(database) if manifest.name.endswith("1430") else first_contents
        assert generations.rebuilt_contents(manifest, tmp_path / "scratch") == expected

    after = generations.take()
    assert _work_directories(settings) == []
    needed = {pack for manifest in generations.manifests() for pack in manifest.packs}
    assert set(pack_names(generations.store)) == needed  # no orphan pack survives the next run
    assert {f"lists/{name}.list" for name in list_names(generations.store)} == {
        each for manifest in generations.manifests() for each in objects_of(manifest) if each.startswith("lists/")}
    assert (after.collection.removed_packs != []) == (point in ("pack", "list", "verified"))
    assert len(after.collection.removed_lists) == (1 if orphan_list else 0)
    for manifest in generations.manifests():
        generations.rebuilt_contents(manifest, tmp_path / "scratch")


@pytest.fixture
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packs of 16 pages of 4 KiB: the test database spans many, and a change leaves some unneeded."""
    monkeypatch.setattr("railguard.pages.writer.PACK_BYTES", 16 * 4096)


def test_removing_a_generation_removes_only_the_packs_no_other_needs(generations: Generations, database: Path,
                                                                    tmp_path: Path, small_packs: None) -> None:
    first = generations.take().manifest
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("DELETE FROM tasks WHERE id > 100")
    connection.execute("VACUUM")
    connection.close()
    second = generations.take().manifest
    only_first = set(first.packs) - set(second.packs)
    assert only_first and set(first.packs) & set(second.packs)  # some packs are shared, some are not
    collection = remove_generations(generations.store, [f"{first.name}.generation.json"])
    assert collection.removed_generations == [f"{first.name}.generation.json"]
    assert set(collection.removed_packs) == only_first
    assert set(pack_names(generations.store)) == set(second.packs)
    assert generations.rebuilt_contents(second, tmp_path / "scratch") == contents(database)


def test_a_gc_killed_between_manifests_and_packs_is_finished_by_the_next_run(
        generations: Generations, database: Path, tmp_path: Path, small_packs: None) -> None:
    first = generations.take().manifest
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("DELETE FROM tasks")
    connection.execute("VACUUM")
    connection.close()
    second = generations.take().manifest
    code = ("import sys; from pathlib import Path; from railguard.pages.gc import remove_generations; "
            "remove_generations(Path(sys.argv[1]), [sys.argv[2]])")
    child = subprocess.run([sys.executable, "-c", code, str(generations.store), f"{first.name}.generation.json"],
                           env={**os.environ, ENVIRONMENT: "gc-between"}, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert generation_names(generations.store) == [f"{second.name}.generation.json"]  # the manifest went first
    assert set(pack_names(generations.store)) > set(second.packs)  # its packs stayed
    assert generations.rebuilt_contents(second, tmp_path / "scratch") == contents(database)
    generations.take()
    assert set(pack_names(generations.store)) == {pack for manifest in generations.manifests()
                                                  for pack in manifest.packs}


def test_no_pack_is_removed_while_a_manifest_cannot_be_read(generations: Generations, database: Path) -> None:
    generations.take()
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("DELETE FROM tasks")
    connection.execute("VACUUM")
    connection.close()
    second = generations.take().manifest
    damaged = generations.store / generation_names(generations.store)[0]
    for name in generation_names(generations.store):
        if second.name not in name:
            damaged = generations.store / name
    damaged.write_text("{ not json")
    before = pack_names(generations.store)
    collection = collect_garbage(generations.store)
    assert collection.removed_packs == []
    assert collection.held_back.startswith("1 generation manifest(s) cannot be read (tasks-20261201-1401")
    assert pack_names(generations.store) == before
