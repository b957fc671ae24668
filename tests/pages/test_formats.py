"""Format 2 keeps the page list in its own object; format-1 stores (the list inline) still work whole."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from railguard.errors import ExitCode, VerifyFailed
from railguard.pages.catalog import list_generations
from railguard.pages.gc import collect_garbage, remove_generations
from railguard.pages.store import (
    LIST_MAGIC, GenerationManifest, list_names, list_path, objects_of, pack_names,
)

from pages.conftest import Generations, add_rows_to, as_format_1, contents
from pages.test_cli import _config

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "rebuild-generation.py"


def _changed(database: Path, first: int) -> None:
    add_rows_to(database, first, 40)


def test_a_format_2_manifest_names_its_page_list_and_stays_small(generations: Generations) -> None:
    result = generations.take()
    manifest = result.manifest
    document = json.loads(result.path.read_bytes())
    assert document["format"] == 2 and "pages" not in document
    assert document["page_list"] == manifest.page_list
    data = list_path(generations.store, manifest.page_list or "").read_bytes()
    assert data.startswith(LIST_MAGIC)
    assert int.from_bytes(data[8:12], "big") == manifest.page_size
    assert int.from_bytes(data[12:16], "big") == manifest.page_count
    assert len(result.path.read_bytes()) < 2000 < manifest.page_count * 70
    assert f"lists/{manifest.page_list}.list" in objects_of(manifest)
    assert list_names(generations.store) == [manifest.page_list]


def test_listing_reads_no_page_list(generations: Generations, database: Path, tmp_path: Path, run_cli) -> None:
    clock = datetime.now(timezone.utc)  # status judges the newest generation's age by the real clock
    generations.take(now=clock - timedelta(minutes=2))
    _changed(database, 3000)
    generations.take(now=clock - timedelta(minutes=1))
    for name in list_names(generations.store):
        list_path(generations.store, name).unlink()  # a listing that read one would now fail
    records = list_generations(generations.settings.directory, "tasks")
    assert [record.is_good for record in records] == [True, True]
    config = _config(tmp_path, database)
    listed = run_cli("--config", config, "backups", "list", "--json")
    assert [entry["good"] for entry in json.loads(listed.stdout)["backups"]] == [True, True]
    status = run_cli("--config", config, "status", "--json")
    rows = {row["name"]: row for row in json.loads(status.stdout)["rows"] if row["app"] == "tasks"}
    assert rows["backup"]["state"] == "ok", rows


def test_a_damaged_page_list_fails_the_generations_that_name_it(generations: Generations, database: Path,
                                                                tmp_path: Path, run_cli) -> None:
    first = generations.take().manifest
    _changed(database, 3000)
    second = generations.take().manifest
    path = list_path(generations.store, second.page_list or "")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x20
    path.write_bytes(bytes(data))
    result = run_cli("--config", _config(tmp_path, database), "backups", "verify", "--all", "--json")
    assert result.exit_code == ExitCode.VERIFY_FAILED
    outcomes = {entry["name"]: entry for entry in json.loads(result.stdout)["results"]}
    assert outcomes[first.name]["ok"] is True
    assert outcomes[second.name] == {
        "name": second.name, "ok": False,
        "result": f"generation {second.name}: page list {(second.page_list or '')[:12]} does not hash to its name "
                  f"(changed since it was written)"}
    path.unlink()
    try:
        generations.rebuilt_contents(second, tmp_path / "scratch")
    except VerifyFailed as exc:
        assert exc.message == (f"generation {second.name}: page list {(second.page_list or '')[:12]} is missing "
                               f"from {generations.store}")
    else:
        raise AssertionError("a generation without its page list rebuilt")


def test_orphan_page_lists_are_collected_and_named_ones_kept(generations: Generations, database: Path) -> None:
    first = generations.take().manifest
    _changed(database, 3000)
    second = generations.take().manifest
    assert set(list_names(generations.store)) == {first.page_list, second.page_list}
    collection = remove_generations(generations.store, [f"{first.name}.generation.json"])
    assert collection.removed_lists == [first.page_list]
    assert list_names(generations.store) == [second.page_list]
    assert collect_garbage(generations.store).removed_lists == []


def test_a_format_1_store_lists_rebuilds_verifies_restores_and_is_collected(
        generations: Generations, database: Path, tmp_path: Path, run_cli) -> None:
    old = generations.take().manifest
    old_contents = contents(database)
    as_format_1(generations.store, old)
    _changed(database, 3000)
    new = generations.take()  # format 2 beside format 1, sharing packs
    assert new.manifest.format == 2
    assert new.collection.removed_packs == []  # the format-1 generation's packs are needed
    record = list_generations(generations.settings.directory, "tasks")[0]
    assert record.is_good and record.manifest is not None and record.manifest.format == 1
    old_parsed = record.manifest
    assert len(old_parsed.pages or []) == old_parsed.page_count
    assert objects_of(old_parsed) == [f"packs/{pack}.pack" for pack in old_parsed.packs]
    assert generations.rebuilt_contents(old_parsed, tmp_path / "scratch") == old_contents

    config = _config(tmp_path, database)
    verified = run_cli("--config", config, "backups", "verify", "--all", "--json")
    assert verified.exit_code == ExitCode.OK, verified.stdout
    assert [entry["ok"] for entry in json.loads(verified.stdout)["results"]] == [True, True]
    out = tmp_path / "script.db"
    script = subprocess.run([sys.executable, "-I", str(SCRIPT), str(record.manifest_path), str(out)],
                            capture_output=True, text=True, timeout=120)
    assert script.returncode == 0, script.stderr
    assert contents(out) == old_contents
    restored = run_cli("--config", config, "restore", old.name)
    assert restored.exit_code == ExitCode.OK, restored.stderr
    assert contents(database) == old_contents

    only_old = set(old_parsed.packs) - set(new.manifest.packs)
    collection = remove_generations(generations.store, [f"{old.name}.generation.json"])
    assert set(collection.removed_packs) == only_old
    assert set(pack_names(generations.store)) == set(new.manifest.packs)
    assert generations.rebuilt_contents(GenerationManifest.parse(new.path.read_bytes()), tmp_path / "scratch")
