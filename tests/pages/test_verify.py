"""``backups verify`` finds a pack or manifest damaged at rest and names every generation it breaks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from railguard.config import BackupSettings
from railguard.errors import ExitCode
from railguard.pages.store import pack_path

from pages.conftest import Generations, add_rows
from pages.test_cli import _config


@pytest.fixture
def three(database: Path, settings: BackupSettings, monkeypatch: pytest.MonkeyPatch) -> Generations:
    monkeypatch.setattr("railguard.pages.writer.PACK_BYTES", 16 * 4096)
    generations = Generations(database, settings)
    generations.take()
    for first in (3000, 4000):
        connection = sqlite3.connect(database, isolation_level=None)
        add_rows(connection, first, 60)
        connection.close()
        generations.take()
    return generations


def test_a_damaged_pack_fails_exactly_the_generations_that_need_it(three: Generations, tmp_path: Path,
                                                                   database: Path, run_cli) -> None:
    one, two, three_ = three.manifests()
    # A pack the second generation wrote and the third still needs; the first never saw it.
    shared = next(pack for pack in two.packs if pack in three_.packs and pack not in one.packs)
    path = pack_path(three.store, shared)
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))

    result = run_cli("--config", _config(tmp_path, database), "backups", "verify", "--all", "--json")
    assert result.exit_code == ExitCode.VERIFY_FAILED
    outcomes = {entry["name"]: entry for entry in json.loads(result.stdout)["results"]}
    assert outcomes[one.name]["ok"] is True
    for broken in (two, three_):
        assert outcomes[broken.name] == {
            "name": broken.name, "ok": False,
            "result": f"generation {broken.name}: pack {shared[:12]} does not hash to its name (changed since it "
                      f"was written)"}
    text = run_cli("--config", _config(tmp_path, database), "backups", "verify", "--all")
    assert f"ok     {one.name}" in text.stdout
    assert f"FAILED {two.name}: generation {two.name}: pack {shared[:12]}" in text.stdout


def test_a_damaged_manifest_is_named_and_the_others_still_verify(three: Generations, tmp_path: Path,
                                                                database: Path, run_cli) -> None:
    one, two, newest = three.manifests()
    (three.store / f"{two.name}.generation.json").write_text('{"name": "x"}')
    result = run_cli("--config", _config(tmp_path, database), "backups", "verify", "--all", "--json")
    assert result.exit_code == ExitCode.VERIFY_FAILED
    outcomes = {entry["name"]: entry for entry in json.loads(result.stdout)["results"]}
    assert outcomes[two.name]["result"].startswith(f"generation {two.name} is unreadable manifest (")
    assert [name for name, entry in outcomes.items() if entry["ok"]] == [one.name, newest.name]


def test_verify_latest_checks_the_newest_generation(three: Generations, tmp_path: Path, database: Path,
                                                   run_cli) -> None:
    newest = three.manifests()[-1]
    result = run_cli("--config", _config(tmp_path, database), "backups", "verify")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.strip() == f"ok     {newest.name}"
