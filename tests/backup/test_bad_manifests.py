"""One bad manifest makes one backup "not good"; every command keeps working with the others.

Each bad shape below is written over the manifest of the *newest* of two real backups, then
every command that reads manifests runs in-process (a traceback fails the test: run_cli does
not catch exceptions). The older backup must stay usable: listed good, chosen by ``latest``,
kept by prune; the bad one is named in a warning and never removed or restored.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from railguard.backup.manifest import BadManifest, Manifest
from railguard.cli.context import Context
from railguard.errors import ExitCode

UTC = timezone.utc
FIRST = datetime(2026, 11, 26, 3, 30, tzinfo=UTC)
SECOND = datetime(2026, 11, 27, 3, 30, tzinfo=UTC)
NOW = SECOND + timedelta(hours=1)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def change(document: dict[str, Any]) -> dict[str, Any]:
        document[key] = value
        return document
    return change


def _drop(key: str) -> Callable[[dict[str, Any]], Any]:
    def change(document: dict[str, Any]) -> dict[str, Any]:
        del document[key]
        return document
    return change


#: name -> (how the manifest document is changed, or the raw text written instead; the reason)
BAD_SHAPES: dict[str, tuple[Callable[[dict[str, Any]], Any] | str, str]] = {
    "created_at month 13": (_set("created_at", "2026-13-27T03:30:00+00:00"), "created_at: not an ISO 8601 time"),
    "created_at naive": (_set("created_at", "2026-11-27T03:30:00"), "has no UTC offset"),
    "created_at null": (_set("created_at", None), "created_at: Input should be a valid string (got null)"),
    "created_at a list": (_set("created_at", ["2026-11-27"]),
                          "created_at: Input should be a valid string (got a list)"),
    "size_raw a string": (_set("size_raw", "8192"), "size_raw: Input should be a valid integer (got a string)"),
    "size_stored a string": (_set("size_stored", "300"), "size_stored: Input should be a valid integer (got a string)"),
    "size_raw negative": (_set("size_raw", -1), "size_raw: Input should be greater than or equal to 0"),
    "verified a string": (_set("verified", "yes"), "verified: Input should be a valid boolean (got a string)"),
    "durations of strings": (_set("durations", {"total": "12s"}), "durations.total: Input should be a valid number"),
    "file with a directory": (_set("file", "../tasks.db"), "file: not a plain file name"),
    "sha256 missing": (_drop("sha256"), "sha256: missing"),
    "durations a list": (_set("durations", [1.5]), "durations: Input should be a valid dictionary (got a list)"),
    "level a string": (_set("level", "3"), "level: Input should be a valid integer (got a string)"),
    "page_size a boolean": (_set("page_size", True), "page_size: Input should be a valid integer (got a boolean)"),
    "page_size a float": (_set("page_size", 4096.0), "page_size: Input should be a valid integer (got a number)"),
    "app a number": (_set("app", 1), "app: Input should be a valid string (got a number)"),
    "two problems": (lambda document: {**document, "source": None, "verified": 1},
                     "source: Input should be a valid string (got null) (and 1 more)"),
    "not an object": (lambda document: [document], "not a JSON object but a list"),
    "null document": (lambda document: None, "not a JSON object but null"),
    "not JSON": ("{not json", "not JSON"),
    "not UTF-8": ("\udcff", "not JSON"),
}


def _bad_text(good: dict[str, Any], shape: str) -> bytes:
    change, _ = BAD_SHAPES[shape]
    if isinstance(change, str):
        return change.encode("utf-8", errors="surrogateescape")
    return json.dumps(change(dict(good))).encode()


@pytest.mark.parametrize("shape", sorted(BAD_SHAPES))
def test_the_parser_refuses_each_bad_shape_with_a_one_line_reason(shape: str) -> None:
    good = json.loads(_good_manifest().to_json())
    with pytest.raises(BadManifest) as refused:
        Manifest.parse(_bad_text(good, shape))
    assert BAD_SHAPES[shape][1] in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_parser_reads_what_the_engine_writes_and_ignores_keys_it_does_not_know() -> None:
    manifest = _good_manifest()
    document = {**json.loads(manifest.to_json()), "written_by_a_newer_railguard": {"x": 1}}
    assert Manifest.parse(json.dumps(document)) == manifest
    legacy = {key: value for key, value in document.items() if key != "app"}  # before the app field
    assert Manifest.parse(json.dumps(legacy)).app is None


# --- the same words as pydantic's strict mode ----------------------------------------------------
# The parser is a table of checks, not a pydantic model (so that reading a manifest builds no
# validator); a pydantic dataclass of the same fields, in strict mode, agrees with it on every
# document below: what it accepts, what it makes of it, and the reason it refuses.


@functools.cache
def _pydantic_mirror() -> Any:
    import dataclasses
    from typing import Annotated

    import pydantic
    from pydantic import AfterValidator, Field, Strict

    def aware(text: str) -> str:
        moment = datetime.fromisoformat(text)  # its ValueError: "not an ISO 8601 time" in the parser
        if moment.tzinfo is None:
            raise ValueError("no UTC offset")
        return text

    def plain(name: str) -> str:
        if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
            raise ValueError("not a plain file name")
        return name

    text, count = Annotated[str, Strict()], Annotated[int, Strict(), Field(ge=0)]
    origin = pydantic.dataclasses.dataclass(dataclasses.make_dataclass("DeployOrigin", [
        ("commit", text | None), ("replaces", text | None), ("kind", text),
        ("deploy_id", Annotated[int, Strict()] | None, dataclasses.field(default=None))]),
        config=pydantic.ConfigDict(extra="ignore"))
    types: dict[str, Any] = {
        "name": text, "file": Annotated[str, Strict(), AfterValidator(plain)], "source": text,
        "created_at": Annotated[str, Strict(), AfterValidator(aware)],
        "sqlite_version": text, "page_size": count, "page_count": count, "journal_mode": text, "size_raw": count,
        "size_stored": count, "sha256": text, "raw_sha256": text, "method": text, "compression": text,
        "level": Annotated[int, Strict()] | None, "check": text, "check_result": text,
        "verified": Annotated[bool, Strict()], "foreign_key_problems": count,
        "durations": dict[text, Annotated[float, Strict()]], "wal_bytes": count, "railguard_version": text,
        "app": text | None, "deploy": origin | None, "format": Annotated[int, Strict()],
    }
    return pydantic.TypeAdapter(dataclasses.make_dataclass("Manifest", [
        (each.name, types[each.name], dataclasses.field(default=each.default, default_factory=each.default_factory))
        for each in dataclasses.fields(Manifest)]))


def _pydantic_reason(document: dict[str, Any]) -> tuple[str, Any]:
    import pydantic

    try:
        return "ok", json.dumps(asdict(_pydantic_mirror().validate_python(document)), sort_keys=True)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "missing":
            return "refused", (key, "missing", exc.error_count())
        if first["type"] == "value_error":  # the parser's own words, checked by BAD_SHAPES above
            return "refused", (key, None, exc.error_count())
        return "refused", (key, f"{first['msg']} (got {_kind(first['input'])})", exc.error_count())


def _kind(value: Any) -> str:
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}[type(value)]


def _parser_reason(document: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", json.dumps(asdict(Manifest.from_dict(document)), sort_keys=True)
    except BadManifest as exc:
        reason, more = re.fullmatch(r"(.*?)(?: \(and (\d+) more\))?", str(exc)).groups()  # type: ignore[union-attr]
        key, _, detail = reason.partition(": ")
        own_words = not detail.startswith(("Input should", "missing"))
        return "refused", (key, None if own_words else detail, 1 + int(more or 0))


def test_every_field_of_the_manifest_has_its_check_in_the_fields_order() -> None:
    from dataclasses import fields

    from railguard.backup.manifest import _CHECKS

    assert list(_CHECKS) == [each.name for each in fields(Manifest)]


def test_the_parser_agrees_with_pydantics_strict_mode_on_every_field_and_value() -> None:
    good = json.loads(_good_manifest().to_json())
    values: list[Any] = [None, True, 0, 1, -1, 2.5, float("inf"), 2**70, "", "x", "..", "a/b", [], [1], {},
                         {"copy": 1, "verify": "2s"}, "2026-11-27T03:30:00+00:00", "2026-11-27T03:30:00",
                         {"commit": "a" * 40, "replaces": None, "kind": "deploy", "deploy_id": 7, "newer": 1},
                         {"commit": None, "replaces": 1, "kind": True}, {"commit": "a", "replaces": "b"}]
    documents = [{key: value for key, value in good.items() if key != dropped} for dropped in good]
    documents += [{**good, key: value} for key in good for value in values]
    documents += [{**good, first: None, second: "x"} for first in good for second in good if first < second]
    for document in documents:
        assert _parser_reason(document) == _pydantic_reason(document), document


def _good_manifest() -> Manifest:
    return Manifest(
        name="tasks-20261127-0330", file="tasks-20261127-0330.sqlite3.zst", source="/app/data/tasks.db",
        created_at="2026-11-27T03:30:00+00:00", sqlite_version="3.40.1", page_size=4096, page_count=2,
        journal_mode="wal", size_raw=8192, size_stored=300, sha256="0" * 64, raw_sha256="1" * 64,
        method="backup-api", compression="zstd", level=None, check="integrity", check_result="ok", verified=True,
        foreign_key_problems=0, durations={"copy": 0.1, "total": 1}, app="tasks",
    )


# --- every command, every bad shape ------------------------------------------------------------


class Setup:
    def __init__(self, tmp_path: Path, tasks_db: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
        self.database = tasks_db
        self.directory = tmp_path / "backups"
        self.config = tmp_path / "railguard.toml"
        self.config.write_text(f'[apps.tasks]\ndatabase = "{tasks_db}"\n'
                               f'[apps.tasks.backup]\ndirectory = "{self.directory}"\nprune = false\n',
                               encoding="utf-8")
        self.run_cli = run_cli
        self.clock = [FIRST]
        monkeypatch.setattr(Context, "now", staticmethod(lambda: self.clock[0]))
        self.good = self._backup(FIRST)
        self._write_row("only in the newer backup")
        self.bad = self._backup(SECOND)
        self.clock[0] = NOW

    def _backup(self, when: datetime) -> str:
        self.clock[0] = when
        # As the schedule takes them: one taken by hand would be protected from the prunes below.
        result = self.run("backup", "--scheduled", "--json")
        assert result.exit_code == ExitCode.OK, result.stderr
        return Path(json.loads(result.stdout)["file"]).name.split(".")[0]

    def _write_row(self, title: str) -> None:
        with sqlite3.connect(self.database) as connection:
            connection.execute("INSERT INTO tasks (title) VALUES (?)", (title,))
        connection.close()

    def run(self, *args: str | Path):
        return self.run_cli("--config", self.config, *args)

    def spoil(self, shape: str) -> Path:
        manifest = self.directory / f"{self.bad}.manifest.json"
        manifest.write_bytes(_bad_text(json.loads(manifest.read_text()), shape))
        for path in self.directory.glob(f"{self.bad}.*"):  # without a manifest its time is its file's
            os.utime(path, (SECOND.timestamp(), SECOND.timestamp()))
        return manifest

    def files(self, name: str) -> list[str]:
        return sorted(path.name for path in self.directory.glob(f"{name}.*"))


@pytest.fixture
def setup(tmp_path: Path, tasks_db: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> Setup:
    return Setup(tmp_path, tasks_db, run_cli, monkeypatch)


def _check_backups_list(s: Setup) -> None:
    result = s.run("backups", "list", "--json")
    assert result.exit_code == ExitCode.OK
    entries = {entry["name"]: entry for entry in json.loads(result.stdout)["backups"]}
    assert entries[s.good]["good"] and not entries[s.bad]["good"]
    assert entries[s.bad]["status"] == "unreadable manifest"
    assert f"warning: backup {s.bad} is not usable: unreadable manifest (" in result.stderr


def _check_verify_latest(s: Setup) -> None:
    result = s.run("backups", "verify", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)["results"]] == [s.good]


def _check_verify_all(s: Setup) -> None:
    result = s.run("backups", "verify", "--all", "--json")
    assert result.exit_code == ExitCode.VERIFY_FAILED
    results = {r["name"]: r["ok"] for r in json.loads(result.stdout)["results"]}
    assert results == {s.good: True, s.bad: False}


def _check_status(s: Setup) -> None:
    result = s.run("status", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED  # the newest backup is not good: flagged
    rows = {row["name"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["backup"]["state"] == "ok" and rows["backup"]["detail"].startswith(s.good)
    assert rows["verified"]["state"] == "flagged" and s.bad in rows["verified"]["detail"]


def _check_prune(s: Setup) -> None:
    result = s.run("prune", "--keep-last", "1", "--json")
    assert result.exit_code == ExitCode.WARNING, result.stderr
    decisions = {d["name"]: d for d in json.loads(result.stdout)["decisions"]}
    assert decisions[s.good]["action"] == "keep" and decisions[s.good]["reasons"] == ["last #1"]
    assert decisions[s.bad]["action"] == "leave" and decisions[s.bad]["reasons"] != ["last #1"]
    assert f"warning: {s.bad} is unreadable manifest: left in place (" in result.stderr
    assert s.files(s.bad) == [f"{s.bad}.manifest.json", f"{s.bad}.sqlite3.zst"]
    assert s.files(s.good) == [f"{s.good}.manifest.json", f"{s.good}.sqlite3.zst"]


def _check_restore(s: Setup) -> None:
    target = s.directory.parent / "restored.db"
    result = s.run("restore", "--to", target, "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["backup"] == s.good
    with sqlite3.connect(target) as connection:  # the older backup: without the newer row
        assert connection.execute("SELECT count(*) FROM tasks WHERE title = 'only in the newer backup'"
                                  ).fetchone() == (0,)
    connection.close()


def _check_backup_then_prune(s: Setup) -> None:
    s.config.write_text(s.config.read_text().replace("prune = false", "prune = true")
                        + "[apps.tasks.retention]\nkeep_last = 1\n")
    s.clock[0] = NOW
    result = s.run("backup", "--json")
    assert result.exit_code == ExitCode.WARNING, result.stderr
    report = json.loads(result.stdout)
    assert any(s.bad in warning and "unreadable manifest" in warning for warning in report["warnings"])
    assert [left["name"] for left in report["steps"]["prune"]["left"]] == [s.bad]
    assert s.files(s.bad) == [f"{s.bad}.manifest.json", f"{s.bad}.sqlite3.zst"]


COMMANDS = {
    "backups list": _check_backups_list,
    "backups verify": _check_verify_latest,
    "backups verify --all": _check_verify_all,
    "status": _check_status,
    "prune": _check_prune,
    "restore": _check_restore,
    "backup (and its prune)": _check_backup_then_prune,
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("shape", sorted(BAD_SHAPES))
def test_a_bad_manifest_spoils_only_its_own_backup(setup: Setup, shape: str, command: str) -> None:
    setup.spoil(shape)
    COMMANDS[command](setup)


def test_a_manifest_that_does_not_parse_is_never_removed_even_without_its_data_file(setup: Setup) -> None:
    manifest = setup.spoil("created_at naive")
    (setup.directory / f"{setup.bad}.sqlite3.zst").unlink()
    setup.clock[0] = NOW + timedelta(days=3)
    setup._backup(NOW + timedelta(days=3))  # a newer good backup: a plain leftover would now go
    result = setup.run("prune", "--keep-last", "1")
    assert result.exit_code == ExitCode.WARNING
    assert manifest.exists()


def test_status_names_an_older_backup_whose_manifest_does_not_parse(setup: Setup) -> None:
    older = setup.directory / f"{setup.good}.manifest.json"
    older.write_text("{not json")
    for path in setup.directory.glob(f"{setup.good}.*"):  # without a manifest its time is its file's
        os.utime(path, (FIRST.timestamp(), FIRST.timestamp()))
    result = setup.run("status", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    rows = {row["name"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["backup"]["state"] == "ok" and rows["backup"]["detail"].startswith(setup.bad)
    assert rows[f"backup:{setup.good}"]["state"] == "flagged"
    assert rows[f"backup:{setup.good}"]["detail"].startswith("unreadable manifest (not JSON")
