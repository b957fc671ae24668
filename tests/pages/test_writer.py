"""A generation stores only new pages, rebuilds to exactly the database, and is verified when made."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from railguard.backup import priority
from railguard.backup.verify import CheckResult
from railguard.config import BackupSettings
from railguard.errors import RailguardError, VerifyFailed
from railguard.pages import store as store_module
from railguard.pages import writer as writer_module
from railguard.pages.rebuild import rebuild_generation
from railguard.pages.store import PACK_MAGIC, generation_names, pack_names, pack_path, read_pack_header

from pages.conftest import Generations, add_rows_to, contents, make_tricky, run_generation_killed_at


def test_first_generation_rebuilds_the_database_exactly(generations: Generations, database: Path,
                                                       tmp_path: Path) -> None:
    result = generations.take()
    manifest = result.manifest
    assert manifest.verified and manifest.check_result == "ok"
    assert manifest.format == 2 and manifest.pages is None
    assert manifest.page_count == len(generations.pages(manifest)) > 10
    assert manifest.new_pages == len(set(generations.pages(manifest)))
    assert manifest.user_version == 7 and manifest.schema_version > 0
    assert manifest.journal_mode == "wal"
    assert result.path.name == "tasks-20261201-1401.generation.json"
    assert contents(database) == generations.rebuilt_contents(manifest, tmp_path / "scratch")
    # Every pack starts with its format and is named by its own sha256.
    for pack in manifest.packs:
        data = pack_path(generations.store, pack).read_bytes()
        assert data.startswith(PACK_MAGIC) and hashlib.sha256(data).hexdigest() == pack


def test_a_small_change_stores_only_the_pages_it_touched(generations: Generations, database: Path,
                                                         tmp_path: Path) -> None:
    first = generations.take().manifest
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("UPDATE tasks SET title = 'changed' WHERE id = 5")
    connection.close()
    second = generations.take().manifest
    changed = sum(1 for old, new in zip(generations.pages(first), generations.pages(second)) if old != new)
    assert 0 < second.new_pages <= changed + 1 < first.page_count // 4
    assert second.new_bytes < first.new_bytes // 4
    assert set(first.packs) <= set(second.packs)  # the unchanged pages are still read from the first packs
    assert contents(database) == generations.rebuilt_contents(second, tmp_path / "scratch")
    assert generations.rebuilt_contents(first, tmp_path / "scratch") != contents(database)


def test_an_unchanged_database_adds_no_pages_but_page_one(generations: Generations) -> None:
    generations.take()
    again = generations.take().manifest
    # The copy rewrites page 1's change counter; nothing else differs.
    assert again.new_pages <= 1


@pytest.mark.parametrize(("page_size", "auto_vacuum"), [(65536, "FULL"), (512, "INCREMENTAL"), (4096, "NONE")])
def test_tricky_schemas_at_every_page_size(tmp_path: Path, settings: BackupSettings, page_size: int,
                                          auto_vacuum: str) -> None:
    database = tmp_path / "tricky.db"
    make_tricky(database, page_size=page_size, auto_vacuum=auto_vacuum, rows=120)
    generations = Generations(database, settings)
    manifest = generations.take().manifest
    assert manifest.page_size == page_size
    assert contents(database) == generations.rebuilt_contents(manifest, tmp_path / "scratch")


def test_vacuum_and_a_page_size_change_between_generations(generations: Generations, database: Path,
                                                           tmp_path: Path) -> None:
    before = generations.take().manifest
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("DELETE FROM tasks WHERE id % 2 = 0")
    connection.execute("VACUUM")  # every page moves
    vacuumed_contents = contents(database)
    connection.close()
    vacuumed = generations.take().manifest
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=DELETE")  # SQLite changes the page size of a WAL database only so
    connection.execute("PRAGMA page_size=16384")
    connection.execute("VACUUM")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    resized = generations.take().manifest
    assert (before.page_size, vacuumed.page_size, resized.page_size) == (4096, 4096, 16384)
    assert vacuumed.page_count < before.page_count
    assert generations.rebuilt_contents(vacuumed, tmp_path / "scratch") == vacuumed_contents
    assert generations.rebuilt_contents(resized, tmp_path / "scratch") == contents(database) == vacuumed_contents
    assert contents(database) != generations.rebuilt_contents(before, tmp_path / "scratch")


def test_each_generation_holds_a_prefix_of_committed_transactions(tmp_path: Path, settings: BackupSettings) -> None:
    from backup.conftest import Writer  # tests/backup's writer process: task N and counter N in one transaction

    data = tmp_path / "data"
    data.mkdir()
    running = Writer(data / "tasks.db")
    try:
        generations = Generations(running.database, settings)
        seen = []
        for _ in range(3):
            manifest = generations.take().manifest
            with rebuild_generation(generations.store, manifest, tmp_path) as rebuilt:
                connection = sqlite3.connect(rebuilt.path)
                counter = connection.execute("SELECT n FROM counter").fetchone()[0]
                ids = [row[0] for row in connection.execute("SELECT seq FROM ledger ORDER BY seq")]
                connection.close()
            assert ids == list(range(1, counter + 1))
            seen.append(counter)
    finally:
        committed, errors, _ = running.stop()
    assert errors == 0
    assert seen == sorted(seen) and seen[-1] <= committed


def test_a_generation_that_fails_its_check_is_never_published(generations: Generations, database: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    generations.take()
    add_rows_to(database, 1000, 50)
    monkeypatch.setattr("railguard.pages.writer.check_database",
                        lambda path, mode: CheckResult(False, ["Page 3 is never used"], 0, 0.0))
    with pytest.raises(VerifyFailed) as failed:
        generations.take()
    assert failed.value.message == (f"the copy of {database} failed quick_check: Page 3 is never used; "
                                    f"generation tasks-20261201-1402 was not kept")
    assert failed.value.hint == "The source database is damaged: inspect it with sqlite3 and restore a good backup"
    assert generation_names(generations.store) == ["tasks-20261201-1401.generation.json"]
    kept = generations.manifests()[0]
    assert set(pack_names(generations.store)) > set(kept.packs)  # the failed run's packs: orphans until the next run
    monkeypatch.undo()
    third = generations.take()
    names = sorted(generation_names(generations.store))
    assert names == ["tasks-20261201-1401.generation.json", "tasks-20261201-1403.generation.json"]
    assert set(pack_names(generations.store)) == set(kept.packs) | set(third.manifest.packs)
    assert third.collection.removed_packs  # the orphans went first


def test_a_damaged_pack_fails_the_rebuild_naming_the_generation(generations: Generations, tmp_path: Path) -> None:
    manifest = generations.take().manifest
    path = pack_path(generations.store, manifest.packs[0])
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(VerifyFailed, match=rf"generation {manifest.name}: pack {manifest.packs[0][:12]} does not "
                                           r"hash to its name"):
        generations.rebuilt_contents(manifest, tmp_path / "scratch")


def test_pack_headers_list_their_pages(generations: Generations) -> None:
    manifest = generations.take().manifest
    listed = {digest.hex() for pack in manifest.packs
              for digest in read_pack_header(pack_path(generations.store, pack))[1]}
    assert listed == set(generations.pages(manifest))


def test_a_damaged_pack_breaks_no_later_generation(generations: Generations, database: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("railguard.pages.writer.PACK_BYTES", 16 * 4096)
    first = generations.take().manifest
    damaged = first.packs[-1]
    path = pack_path(generations.store, damaged)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("DELETE FROM tasks WHERE id < 50")
    connection.close()
    second = generations.take()  # stores the pages it needs from the damaged pack again
    assert second.warnings == [f"pack {damaged[:12]} is damaged: the pages this generation needs from it were "
                               f"stored again (over it, when they make the same pack); generations that named it: "
                               f"{first.name}; run railguard backups verify --all"]
    assert damaged not in second.manifest.packs
    assert generations.rebuilt_contents(second.manifest, tmp_path / "scratch") == contents(database)
    with pytest.raises(VerifyFailed, match=rf"generation {first.name}: pack {damaged[:12]}"):
        generations.rebuilt_contents(first, tmp_path / "scratch")


def test_writing_the_same_pack_again_mends_a_damaged_one(generations: Generations, database: Path,
                                                       tmp_path: Path) -> None:
    first = generations.take().manifest
    path = pack_path(generations.store, first.packs[0])
    good = path.read_bytes()
    path.write_bytes(good[:-10] + bytes(10))
    second = generations.take()
    assert second.warnings and second.warnings[0].startswith(f"pack {first.packs[0][:12]} is damaged")
    assert path.read_bytes() == good  # the same pages made the same pack: its good bytes took the name back
    assert generations.rebuilt_contents(first, tmp_path / "scratch") == contents(database)


def test_a_store_planted_as_a_link_is_refused_and_its_target_untouched(generations: Generations,
                                                                       settings: BackupSettings,
                                                                       tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    settings.directory.mkdir()
    generations.store.symlink_to(elsewhere)
    with pytest.raises(RailguardError) as refused:
        generations.take()
    assert refused.value.message == f"cannot write the backup in {generations.store}: Not a directory"
    assert list(elsewhere.iterdir()) == []


def test_a_damaged_source_is_named_and_no_generation_is_kept(tmp_path: Path, settings: BackupSettings) -> None:
    database = tmp_path / "damaged.db"
    connection = sqlite3.connect(database)
    connection.executescript("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL);"
                             "CREATE INDEX tasks_title ON tasks (title);")
    connection.executemany("INSERT INTO tasks (title) VALUES (?)", [(f"task {n:05d}",) for n in range(50)])
    connection.commit()
    root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tasks_title'").fetchone()[0]
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    data = bytearray(database.read_bytes())
    key = data.find(b"task 00007", (root - 1) * page_size, root * page_size)
    data[key + 9] = ord("X")  # the index entry no longer matches its row
    database.write_bytes(bytes(data))
    # quick_check does not compare an index with its table: the check configured, integrity_check, does.
    generations = Generations(database, BackupSettings(directory=settings.directory, check="integrity"))
    with pytest.raises(VerifyFailed) as failed:
        generations.take()
    assert failed.value.message == (f"the copy of {database} failed integrity_check: row 8 missing from index "
                                    f"tasks_title; generation damaged-20261201-1401 was not kept")
    assert generation_names(generations.store) == []


def test_an_extra_generation_reads_back_only_its_new_packs(generations: Generations, database: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("railguard.pages.writer.PACK_BYTES", 16 * 4096)
    first = generations.take().manifest
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("UPDATE tasks SET title = 'changed' WHERE id = 5")
    connection.close()
    read: list[str] = []
    real_read_pack, real_read_published = store_module.read_pack, store_module.read_published_pack

    def recording(path: Path, digest: str):  # type: ignore[no-untyped-def]
        read.append(digest)
        return real_read_pack(path, digest)

    def recording_published(path: Path, digest: str):  # type: ignore[no-untyped-def]
        read.append(digest)
        return real_read_published(path, digest)

    monkeypatch.setattr("railguard.pages.writer.read_pack", recording)
    monkeypatch.setattr("railguard.pages.rebuild.read_published_pack", recording_published)
    second = generations.take().manifest
    new_packs = set(second.packs) - set(first.packs)
    assert new_packs and len(second.packs) > len(new_packs)  # most pages stay in the first generation's packs
    assert sorted(read) == sorted(new_packs)  # each new pack read back once, no old one decompressed
    assert second.verified and second.check_result == "ok"


def test_a_pack_damaged_right_after_it_was_written_fails_the_generation(generations: Generations, database: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    generations.take()
    add_rows_to(database, 1000, 50)
    real_store_object = writer_module._store_object

    def losing_a_write(workspace, store, directory, suffix, data):  # type: ignore[no-untyped-def]
        name, new = real_store_object(workspace, store, directory, suffix, data)
        if directory == "packs":  # the disk returns other bytes than were written
            path = pack_path(store, name)
            path.write_bytes(path.read_bytes()[:-1] + b"\0")
        return name, new

    monkeypatch.setattr("railguard.pages.writer._store_object", losing_a_write)
    with pytest.raises(VerifyFailed) as failed:
        generations.take()
    assert failed.value.message.startswith("generation tasks-20261201-1402: pack ")
    assert failed.value.message.endswith(" does not hash to its name (changed since it was written) right after it "
                                         "was written; it was not kept")
    assert generation_names(generations.store) == ["tasks-20261201-1401.generation.json"]


def test_an_orphan_pack_is_not_trusted_while_a_held_back_gc_keeps_it(generations: Generations, database: Path,
                                                                     settings: BackupSettings, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    generations.take()
    add_rows_to(database, 5000, 80)
    assert run_generation_killed_at("pack", database, settings, minute=30) == -signal.SIGKILL
    named = {pack for manifest in generations.manifests() for pack in manifest.packs}
    orphans = set(pack_names(generations.store)) - named
    assert orphans  # its pages were never read back: nothing says its frame matches its header
    (generations.store / "tasks-20261201-1459.generation.json").write_text("{ not json")
    read: list[str] = []
    real_read_pack = store_module.read_pack
    monkeypatch.setattr("railguard.pages.writer.read_pack",
                        lambda path, digest: (read.append(digest), real_read_pack(path, digest))[1])
    result = generations.take()
    assert result.collection.held_back and set(pack_names(generations.store)) >= orphans  # GC held back
    # Its pages were stored again (the very same pack, by name) and it was read back before use.
    assert orphans <= set(result.manifest.packs) and orphans <= set(read)
    assert generations.rebuilt_contents(result.manifest, tmp_path / "scratch") == contents(database)


def test_a_generation_runs_quick_check_unless_check_is_set(tmp_path: Path, database: Path) -> None:
    default = Generations(database, BackupSettings(directory=tmp_path / "one"))
    assert (default.take().manifest.check, default.take().manifest.check_result) == ("quick", "ok")
    for mode in ("integrity", "quick"):
        configured = Generations(database, BackupSettings(directory=tmp_path / mode, check=mode))
        assert configured.take().manifest.check == mode
    whole_file = BackupSettings(directory=tmp_path / "file")
    assert whole_file.check == "integrity"  # whole-file backups keep theirs


def test_every_pack_and_page_list_reaches_the_disk_paced(generations: Generations,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's objects go through paced_write (the app's commits never queue behind a whole pack);
    the manifest, a kilobyte, does not need to."""
    paced: list[int] = []

    def recording(fd: int, data: bytes, **kwargs: int) -> None:
        paced.append(len(data))
        priority.paced_write(fd, data, **kwargs)

    monkeypatch.setattr(writer_module, "paced_write", recording)
    first = generations.take().manifest
    assert len(paced) == len(first.packs) + 1  # each pack, then the page list
    assert sum(paced) == first.new_bytes
    assert generations.rebuilt_contents(first, generations.store.parent / "scratch") == contents(generations.database)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_packs_are_written_beside_the_hashing_at_background_priority(generations: Generations, database: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pack is made durable on one worker thread, at SCHED_IDLE, while the next is collected;
    the page list on that thread too, once every pack is durable."""
    monkeypatch.setattr(writer_module, "PACK_BYTES", 16 * 4096)
    written: list[tuple[str, int, int]] = []  # (pack or list, thread, policy)

    def recording(fd: int, data: bytes, **kwargs: int) -> None:
        kind = "pack" if data.startswith(PACK_MAGIC) else "list"
        written.append((kind, threading.get_ident(), os.sched_getscheduler(0)))
        priority.paced_write(fd, data, **kwargs)

    monkeypatch.setattr(writer_module, "paced_write", recording)
    first = generations.take().manifest
    assert [kind for kind, _, _ in written] == ["pack"] * len(first.packs) + ["list"]
    assert len(first.packs) > 2
    assert {thread for _, thread, _ in written} == {written[0][1]} != {threading.get_ident()}  # one worker, not us
    assert {policy for _, _, policy in written} == {os.SCHED_IDLE}
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("railguard-pack")]
    assert generations.rebuilt_contents(first, generations.store.parent / "scratch") == contents(database)


def test_a_pack_that_cannot_be_written_fails_the_generation_and_keeps_none(generations: Generations, database: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    generations.take()
    add_rows_to(database, 2000, 50)
    monkeypatch.setattr(writer_module, "PACK_BYTES", 16 * 4096)
    real_store_object = writer_module._store_object
    stored: list[str] = []

    def disk_full_at_the_second_pack(workspace, store, directory, suffix, data):  # type: ignore[no-untyped-def]
        if directory == "packs" and len(stored) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        name, new = real_store_object(workspace, store, directory, suffix, data)
        stored.append(name)
        return name, new

    monkeypatch.setattr(writer_module, "_store_object", disk_full_at_the_second_pack)
    with pytest.raises(RailguardError) as failed:
        generations.take()
    assert failed.value.message.startswith("no space left in ")  # the worker's error, raised by the generation
    assert failed.value.message.endswith("while writing the backup; older backups are untouched")
    assert generation_names(generations.store) == ["tasks-20261201-1401.generation.json"]
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("railguard-pack")]
    monkeypatch.setattr(writer_module, "_store_object", real_store_object)
    result = generations.take()  # the next run cleans up and makes the generation
    assert generations.rebuilt_contents(result.manifest, generations.store.parent / "scratch") == contents(database)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_copy_runs_at_background_priority_for_at_most_its_limit(generations: Generations,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    policies: list[int] = []
    real_take_snapshot = writer_module.take_snapshot
    before = os.sched_getscheduler(0)

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        policies.append(os.sched_getscheduler(0))
        deadline = time.monotonic() + 60
        while writer_module.COPY_AT_IDLE == 0 and os.sched_getscheduler(0) != before and time.monotonic() < deadline:
            time.sleep(0.01)  # its limit at 0: wait for the raise itself, not a guessed time
        policies.append(os.sched_getscheduler(0))
        return real_take_snapshot(*args, **kwargs)

    monkeypatch.setattr(writer_module, "take_snapshot", recording)
    monkeypatch.setattr(writer_module, "COPY_AT_IDLE", 3600.0)
    assert generations.take().manifest.verified
    assert policies == [os.SCHED_IDLE, os.SCHED_IDLE]  # within its limit the copy stays idle
    policies.clear()
    monkeypatch.setattr(writer_module, "COPY_AT_IDLE", 0.0)
    assert generations.take().manifest.verified
    assert policies[-1] == before  # past its limit the copy is raised to normal while it still runs
    assert os.sched_getscheduler(0) == before
