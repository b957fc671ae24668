"""Page generations at destinations (docs/pages.md, issue 19): only the objects a destination
lacks travel, each read back; a document there always names objects that are there; verify,
restore and drill read a generation back through the local paths; retention removes documents
first and the objects no document names after."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from destinations.conftest import AgeKey
from pages.conftest import add_rows, contents, make_tricky
from railguard.config import Settings
from railguard.destinations.generations import GenerationCopies
from railguard.destinations.replicate import replicate
from railguard.logfmt import read_lines
from railguard.pages.store import objects_of, pack_path, store_for
from railguard.pages.writer import take_generation

pytestmark = pytest.mark.timeout(180)

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


class App:
    """A page-kind app with one destination, generations taken a minute apart."""

    def __init__(self, tmp_path: Path, destination: dict[str, Any]) -> None:
        self.tmp_path = tmp_path
        data = tmp_path / "data"
        data.mkdir()
        self.database = data / "tasks.db"
        make_tricky(self.database, rows=200)
        self.directory = tmp_path / "backups"
        self.destination = destination
        self.settings = Settings.model_validate({
            "timezone": "UTC", "state_dir": str(tmp_path / "state"),
            "apps": {"tasks": {"database": str(self.database),
                               "backup": {"directory": str(self.directory), "kind": "pages"},
                               "destinations": {"nas": destination}}}})
        self.app = self.settings.apps["tasks"]
        self.taken = 0
        self.rows = 200

    @property
    def store(self) -> Path:
        return store_for(self.directory, "tasks")

    def take(self, new_rows: int = 5):  # type: ignore[no-untyped-def]
        if self.taken:
            connection = sqlite3.connect(self.database, isolation_level=None)
            add_rows(connection, self.rows + 1, new_rows)
            connection.close()
            self.rows += new_rows
        self.taken += 1
        return take_generation(self.database, self.app.backup, now=self.now, app="tasks")

    @property
    def now(self) -> datetime:
        return T0 + timedelta(minutes=self.taken)

    def replicate(self, **options: Any):  # type: ignore[no-untyped-def]
        [run] = replicate(self.settings, "tasks", self.app, now=self.now, notify=False, **options)
        return run

    def copies(self) -> GenerationCopies:
        from railguard.destinations.base import Destination

        return GenerationCopies(Destination("nas", self.app.destinations["nas"]), "tasks")


def new_object_bytes(app: App, before: set[str], manifest) -> int:  # type: ignore[no-untyped-def]
    return sum((app.store / path).stat().st_size for path in objects_of(manifest) if path not in before)


def file_destination(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    nas = tmp_path / "nas"
    nas.mkdir()
    return {"url": f"file://{nas}", "attempts": 1, **extra}


def s3_destination(moto_endpoint: str, bucket: str) -> dict[str, Any]:
    return {"url": f"s3://{bucket}/offsite/tasks", "endpoint_url": moto_endpoint, "region": "us-east-1",
            "addressing_style": "path", "attempts": 1}


def _sent_per_generation(app: App) -> list[tuple[int, int]]:
    """(bytes sent, bytes of the objects that generation added) for a first and four extra generations."""
    figures = []
    sent_before: set[str] = set()
    for _ in range(5):
        result = app.take()
        run = app.replicate()
        assert run.ok, run.summary()
        assert run.copied == [result.manifest.name]
        figures.append((run.bytes, new_object_bytes(app, sent_before, result.manifest)))
        sent_before.update(objects_of(result.manifest))
    return figures


def test_only_new_objects_travel_to_a_file_destination(tmp_path: Path) -> None:
    app = App(tmp_path, file_destination(tmp_path))
    figures = _sent_per_generation(app)
    assert all(sent == new for sent, new in figures), figures
    assert all(sent < figures[0][0] / 2 for sent, _ in figures[1:]), figures  # extra ones: a fraction of the first
    # The local layout, under the app's prefix; every document names objects that are there.
    nas = tmp_path / "nas"
    assert sorted(path.name for path in (nas / "tasks.pages").glob("*.generation.json")) == \
        [f"tasks-20261201-14{minute:02d}.generation.json" for minute in range(1, 6)]
    for generation in app.copies().held():
        assert generation.is_good, generation.status
        assert all((nas / "tasks.pages" / item.key).is_file() for item in generation.objects)
    # Nothing new: nothing sent.
    again = app.replicate()
    assert (again.copied, again.bytes, again.present) == ([], 0, 5)


def test_only_new_objects_travel_to_s3(tmp_path: Path, moto_endpoint: str, bucket: str, s3_client) -> None:  # type: ignore[no-untyped-def]
    app = App(tmp_path, s3_destination(moto_endpoint, bucket))
    figures = _sent_per_generation(app)
    assert all(sent == new for sent, new in figures), figures
    keys = {item["Key"]: item["Size"] for item in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    packs = {key for key in keys if key.startswith("offsite/tasks/tasks.pages/packs/")}
    assert sum(keys[key] for key in packs) == sum(sent for sent, _ in figures)  # each object sent once
    assert len([key for key in keys if key.endswith(".generation.json")]) == 5


def test_encrypted_objects_travel_once_each_and_read_back_with_the_identity(tmp_path: Path,
                                                                            age_key: AgeKey) -> None:
    app = App(tmp_path, file_destination(tmp_path, age_recipients=[age_key.recipient],
                                         age_identity_file=str(age_key.identity_file)))
    firsts = []
    for _ in range(3):
        result = app.take()
        run = app.replicate()
        assert run.ok and run.copied == [result.manifest.name], run.summary()
        firsts.append(run.bytes)
    nas = tmp_path / "nas" / "tasks.pages"
    stored = sorted(path.name for path in (nas / "packs").iterdir())
    assert stored and all(name.endswith(".pack.age") for name in stored)
    assert sum((nas / "packs" / name).stat().st_size for name in stored) == sum(firsts)  # none sent twice
    # age output is not plaintext: no stored object holds a pack's magic.
    assert not any((nas / "packs" / name).read_bytes().startswith(b"RGPACK1") for name in stored)
    copies = app.copies()
    generations = copies.held()
    assert [generation.is_good for generation in generations] == [True] * 3
    records = copies.fetch(generations, _private(tmp_path / "fetched"))
    newest = records[generations[-1].name]
    assert not isinstance(newest, Exception), newest
    from railguard.pages.rebuild import rebuild_generation

    with rebuild_generation(newest.store, newest.manifest, _private(tmp_path / "scratch")) as rebuilt:
        assert contents(rebuilt.path) == contents(app.database)


def test_a_run_killed_before_the_document_leaves_no_generation_there_and_the_next_run_completes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = App(tmp_path, file_destination(tmp_path))
    app.take()
    assert app.replicate().ok
    result = app.take()
    from railguard.destinations import generations as module

    def killed(*args: Any, **kwargs: Any) -> bytes:
        raise KeyboardInterrupt  # where a kill -9 would stop it: objects sent, no document yet

    monkeypatch.setattr(module, "generation_document", killed)
    with pytest.raises(KeyboardInterrupt):
        app.replicate()
    monkeypatch.undo()
    assert [generation.name for generation in app.copies().held()] == ["tasks-20261201-1401"]
    run = app.replicate()
    assert run.ok and run.copied == [result.manifest.name], run.summary()
    assert run.bytes == 0  # its objects were already there, listed with the local sizes


def _private(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def test_a_damaged_local_pack_is_never_sent(tmp_path: Path) -> None:
    app = App(tmp_path, file_destination(tmp_path))
    result = app.take()
    pack = pack_path(app.store, result.manifest.packs[0])
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x01
    pack.write_bytes(bytes(data))

    run = app.replicate()

    assert not run.ok
    assert run.failed == [{"backup": result.manifest.name, "reason": (
        f"generation {result.manifest.name}: local object packs/{result.manifest.packs[0]}.pack does not hash "
        "to its name (damaged on this disk); not copied")}]
    assert not list((tmp_path / "nas").rglob("*.generation.json"))
    assert not list((tmp_path / "nas").rglob("*.pack"))
    [line] = read_lines(app.directory / "destinations.log")
    assert (line["destination"], line["backup"], line["result"]) == ("nas", result.manifest.name, "failed")
