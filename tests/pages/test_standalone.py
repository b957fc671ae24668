"""docs/rebuild-generation.py rebuilds a generation with the standard library alone (and the stock zstd tool)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from railguard.pages.store import list_path, pack_path

from pages.conftest import Generations, add_rows, as_format_1, contents

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "rebuild-generation.py"


def _rebuild(manifest: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # -I: isolated, no site-packages: railguard, zstandard and pydantic are out of reach.
    return subprocess.run([sys.executable, "-I", str(SCRIPT), str(manifest), str(out)], capture_output=True,
                          text=True, timeout=120)


def test_the_script_rebuilds_every_generation(generations: Generations, database: Path, tmp_path: Path) -> None:
    first = generations.take()
    first_contents = contents(database)
    connection = sqlite3.connect(database, isolation_level=None)
    add_rows(connection, 2000, 40)
    connection.execute("VACUUM")
    connection.close()
    second = generations.take()
    for result, expected in ((first, first_contents), (second, contents(database))):
        out = tmp_path / f"{result.manifest.name}.db"
        run = _rebuild(result.path, out)
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith(f"rebuilt {result.manifest.name} into {out}: {result.manifest.page_count} pages")
        assert contents(out) == expected
        check = sqlite3.connect(out)
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        check.close()
    assert sorted(path.name for path in tmp_path.iterdir() if path.suffix == ".partial") == []


def test_the_script_refuses_a_damaged_pack_and_leaves_no_file(generations: Generations, tmp_path: Path) -> None:
    result = generations.take()
    pack = pack_path(generations.store, result.manifest.packs[0])
    good = pack.read_bytes()
    data = bytearray(good)
    data[-3] ^= 0x40
    pack.write_bytes(bytes(data))
    out = tmp_path / "out.db"
    run = _rebuild(result.path, out)
    assert run.returncode == 1
    assert run.stderr.strip() == f"error: pack {result.manifest.packs[0]} is damaged"
    assert not out.exists() and not Path(f"{out}.partial").exists()
    pack.write_bytes(good)
    (tmp_path / "taken.db").write_text("mine")
    refused = _rebuild(result.path, tmp_path / "taken.db")
    assert refused.returncode != 0 and "FileExistsError" in refused.stderr
    assert (tmp_path / "taken.db").read_text() == "mine"
    assert _rebuild(result.path, out).returncode == 0


def test_the_script_rebuilds_a_format_1_generation_too(generations: Generations, database: Path,
                                                       tmp_path: Path) -> None:
    result = generations.take()
    path = as_format_1(generations.store, result.manifest)  # its page list inline, no list object
    out = tmp_path / "format-1.db"
    run = _rebuild(path, out)
    assert run.returncode == 0, run.stderr
    assert contents(out) == contents(database)


def test_the_script_refuses_a_damaged_page_list(generations: Generations, tmp_path: Path) -> None:
    result = generations.take()
    listed = list_path(generations.store, result.manifest.page_list or "")
    data = bytearray(listed.read_bytes())
    data[-2] ^= 0x01
    listed.write_bytes(bytes(data))
    out = tmp_path / "out.db"
    run = _rebuild(result.path, out)
    assert run.returncode == 1
    assert run.stderr.strip() == f"error: page list {result.manifest.page_list} is damaged"
    assert not out.exists()
