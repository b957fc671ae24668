"""Page generations at destinations (docs/pages.md, issue 19): only the objects a destination
lacks travel, each read back; a document there always names objects that are there; verify,
restore and drill read a generation back through the local paths; retention removes documents
first and the objects no document names after."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from destinations.conftest import AgeKey
from pages.conftest import add_rows, contents, make_tricky
from destinations.conftest import Backend
from railguard.config import DestinationSettings, Settings
from railguard.destinations.generations import GenerationCopies
from railguard.destinations.replicate import replicate
from railguard.logfmt import read_lines
from railguard.pages.store import objects_of, pack_path, store_for
from railguard.pages.writer import take_generation

pytestmark = pytest.mark.timeout(180)

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


class App:
    """A page-kind app with one destination, generations taken a minute apart."""

    def __init__(self, tmp_path: Path, destination: dict[str, Any] | DestinationSettings) -> None:
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
                               "destinations": {"nas": destination if isinstance(destination, dict) else {
                                   "url": destination.url}}}}})
        self.app = self.settings.apps["tasks"]
        if isinstance(destination, DestinationSettings):
            self.app.destinations["nas"] = destination  # a backend fixture's, as it is
        self.taken = 0
        self.rows = 200

    @property
    def store(self) -> Path:
        return store_for(self.directory, "tasks")

    def take(self, new_rows: int = 5, *, churn: bool = False):  # type: ignore[no-untyped-def]
        """A generation after adding ``new_rows``; with ``churn``, after replacing every row, so
        that the pages of the earlier generations' rows are needed by them only."""
        if self.taken:
            connection = sqlite3.connect(self.database, isolation_level=None)
            if churn:
                connection.executescript("DELETE FROM tasks; DELETE FROM tags; DELETE FROM notes;")
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

    def config(self) -> Path:
        """railguard.toml saying what :attr:`settings` says, for the CLI."""
        lines = ['timezone = "UTC"', f'state_dir = "{self.tmp_path / "state"}"', "[apps.tasks]",
                 f'database = "{self.database}"', "[apps.tasks.backup]", f'directory = "{self.directory}"',
                 'kind = "pages"', "[apps.tasks.destinations.nas]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in self.destination.items()
                  if not isinstance(value, dict)]
        for key, value in self.destination.items():
            if isinstance(value, dict):
                lines.append(f"[apps.tasks.destinations.nas.{key}]")
                lines += [f"{name} = {json.dumps(item)}" for name, item in value.items()]
        path = self.tmp_path / "railguard.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

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
    objects = {key for key in keys
               if key.startswith("offsite/tasks/tasks.pages/") and not key.endswith(".generation.json")}
    assert sum(keys[key] for key in objects) == sum(sent for sent, _ in figures)  # each object sent once
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
    stored = sorted(path for folder in ("packs", "lists") for path in (nas / folder).iterdir())
    assert {path.name.rpartition(".")[0].rpartition(".")[2] for path in stored} == {"pack", "list"}
    assert all(path.name.endswith(".age") for path in stored)
    assert sum(path.stat().st_size for path in stored) == sum(firsts)  # none sent twice
    # age output is not plaintext: no stored object holds a pack's or a page list's magic.
    assert not any(path.read_bytes().startswith((b"RGPACK1", b"RGLIST1")) for path in stored)
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


def three_generations_there(tmp_path: Path, **extra: Any) -> tuple[App, list[list[object]]]:
    """Three generations replicated to a file:// destination, and the database as each saw it."""
    app = App(tmp_path, file_destination(tmp_path, **extra))
    seen = []
    for _ in range(3):
        app.take(new_rows=20)
        assert app.replicate().ok
        seen.append(contents(app.database))
    return app, seen


NAMES = ["tasks-20261201-1401", "tasks-20261201-1402", "tasks-20261201-1403"]


def test_backups_list_dest_shows_the_generations_held_there(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    app, _ = three_generations_there(tmp_path)
    result = run_cli("--config", app.config(), "backups", "list", "--dest", "nas", "--json")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)["backups"]
    assert [(item["name"], item["kind"], item["good"], item["status"]) for item in listed] == [
        (name, "pages", True, "ok") for name in NAMES]
    newest = app.copies().held()[-1]
    assert listed[-1]["size"] == newest.stored_bytes == sum(item.size for item in newest.objects)
    table = run_cli("--config", app.config(), "backups", "list", "--dest", "nas")
    assert table.exit_code == 0 and all(name in table.stdout for name in NAMES)
    assert "generation" in table.stdout


def test_verify_dest_rebuilds_every_generation_and_names_a_damaged_object_with_what_it_breaks(
        tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    app, _ = three_generations_there(tmp_path)
    config = app.config()
    ok = run_cli("--config", config, "backups", "verify", "--dest", "nas", "--all", "--json")
    assert ok.exit_code == 0, ok.stdout
    assert [(r["name"], r["ok"], r["checked"]) for r in json.loads(ok.stdout)["results"]] == [
        (name, True, "database") for name in NAMES]
    # The first generation's first pack is named by all three.
    generations = app.copies().held()
    key = generations[0].objects[0].key
    needing = [generation.name for generation in generations if key in {item.key for item in generation.objects}]
    assert len(needing) >= 2
    stored = tmp_path / "nas" / "tasks.pages" / key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))

    bad = run_cli("--config", config, "backups", "verify", "--dest", "nas", "--all", "--json")

    assert bad.exit_code == 4, bad.stdout
    results = {r["name"]: r for r in json.loads(bad.stdout)["results"]}
    message = (f"destination nas: object {key} does not match its recorded sha256 (damaged at the destination); "
               f"it breaks generation(s) {', '.join(needing)}")
    assert [results[name]["result"] for name in needing] == [message] * len(needing)
    assert all(results[name]["ok"] for name in NAMES if name not in needing)
    one = run_cli("--config", config, "backups", "verify", "--dest", "nas")  # latest
    assert one.exit_code == 4
    assert f"FAILED {NAMES[-1]}: {message}" in one.stdout.splitlines() or NAMES[-1] not in needing


def test_restore_dest_rebuilds_a_generation_fetched_into_a_private_scratch_store(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    app, seen = three_generations_there(tmp_path)
    config = app.config()
    import shutil

    shutil.rmtree(app.store)  # this host lost its store: only the destination holds the generations
    newest = run_cli("--config", config, "restore", "--dest", "nas", "--to", tmp_path / "newest.db")
    assert newest.exit_code == 0, newest.stderr
    assert contents(tmp_path / "newest.db") == seen[-1]
    first = run_cli("--config", config, "restore", NAMES[0], "--dest", "nas", "--to", tmp_path / "first.db")
    assert first.exit_code == 0, first.stderr
    assert contents(tmp_path / "first.db") == seen[0]
    assert not [path for path in app.directory.iterdir() if path.name.startswith(".railguard-fetch-")]


def test_a_missing_object_fails_its_generations_and_replicate_sends_it_again(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    app, seen = three_generations_there(tmp_path)
    generations = app.copies().held()
    earlier = {item.key for generation in generations[:-1] for item in generation.objects}
    [key] = [item.key for item in generations[-1].objects  # the newest's own pack
             if item.key not in earlier and item.key.startswith("packs/")]
    (tmp_path / "nas" / "tasks.pages" / key).unlink()
    listed = {g.name: g for g in app.copies().held()}
    assert listed[NAMES[-1]].status == f"missing object {key}"
    missing = run_cli("--config", app.config(), "backups", "verify", NAMES[-1], "--dest", "nas", "--json")
    assert missing.exit_code == 4
    [result] = json.loads(missing.stdout)["results"]
    assert result["result"].startswith(f"destination nas: object {key} is missing; it breaks generation(s) ")
    refused = run_cli("--config", app.config(), "restore", NAMES[-1], "--dest", "nas", "--to", tmp_path / "no.db")
    assert refused.exit_code == 4
    assert refused.stderr.splitlines()[0] == f"error: {result['result']}"
    assert not (tmp_path / "no.db").exists()
    # latest skips it: the newest good generation there is restored instead.
    older = run_cli("--config", app.config(), "restore", "--dest", "nas", "--to", tmp_path / "older.db")
    assert older.exit_code == 0, older.stderr
    assert contents(tmp_path / "older.db") == seen[-2]
    run = app.replicate()
    assert run.ok and NAMES[-1] in run.replaced, run.summary()
    assert all(generation.is_good for generation in app.copies().held())
    restored = run_cli("--config", app.config(), "restore", "--dest", "nas", "--to", tmp_path / "again.db")
    assert restored.exit_code == 0, restored.stderr
    assert contents(tmp_path / "again.db") == seen[-1]


def test_encrypted_generations_verify_by_checksum_without_the_identity_and_in_full_with_it(
        tmp_path: Path, run_cli, age_key: AgeKey) -> None:  # type: ignore[no-untyped-def]
    app, seen = three_generations_there(tmp_path, age_recipients=[age_key.recipient])
    config = app.config()
    checksum = run_cli("--config", config, "backups", "verify", "--dest", "nas", "--all", "--json")
    assert checksum.exit_code == 0, checksum.stdout
    assert {r["checked"] for r in json.loads(checksum.stdout)["results"]} == {"checksum"}
    full = run_cli("--config", config, "backups", "verify", "--dest", "nas", "--all", "--identity",
                   age_key.identity_file, "--json")
    assert full.exit_code == 0, full.stdout
    assert {r["checked"] for r in json.loads(full.stdout)["results"]} == {"database"}
    from railguard.destinations.encryption import generate_identity

    wrong = tmp_path / "wrong-identity.txt"
    wrong.write_text(generate_identity()[0] + "\n")
    refused = run_cli("--config", config, "restore", "--dest", "nas", "--identity", wrong, "--to", tmp_path / "x.db")
    assert refused.exit_code == 4
    assert refused.stderr.splitlines()[0] == f"error: cannot decrypt with {wrong}: No matching keys found"
    assert not (tmp_path / "x.db").exists()
    restored = run_cli("--config", config, "restore", "--dest", "nas", "--identity", age_key.identity_file,
                       "--to", tmp_path / "y.db")
    assert restored.exit_code == 0, restored.stderr
    assert contents(tmp_path / "y.db") == seen[-1]


KEEP_2_LAST = {"keep_last": 2, "keep_daily": 0, "keep_weekly": 0}


def _assert_every_document_names_objects_that_are_there(app: App) -> list[str]:
    """Every generation there is good and rebuilds; returns the names."""
    copies = app.copies()
    held = copies.held()
    assert all(generation.is_good for generation in held), [generation.status for generation in held]
    fetched = copies.fetch(held, _private(app.tmp_path / f"check-{len(list(app.tmp_path.iterdir()))}"))
    assert not [record for record in fetched.values() if isinstance(record, Exception)], fetched
    return [generation.name for generation in held]


def _objects_in(store: Path) -> set[str]:
    """The names of a store's objects: its packs and its page lists (objects_of's folders)."""
    return {path.name for folder in ("packs", "lists") if (store / folder).is_dir()
            for path in (store / folder).iterdir()}


def _objects_there(app: App) -> set[str]:
    return _objects_in(app.tmp_path / "nas" / "tasks.pages")


def _named(app: App) -> set[str]:
    return {item.key.rpartition("/")[2] for generation in app.copies().held() for item in generation.objects}


@pytest.fixture
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packs of 16 pages: a generation's own pages land in packs only it needs."""
    monkeypatch.setattr("railguard.pages.writer.PACK_BYTES", 16 * 4096)


def test_retention_there_removes_documents_then_the_objects_no_document_names(tmp_path: Path,
                                                                               small_packs: None) -> None:
    app = App(tmp_path, file_destination(tmp_path, retention=KEEP_2_LAST))
    for _ in range(5):
        app.take(new_rows=20, churn=True)
        run = app.replicate(prune=True)
        assert run.ok, run.summary()
    assert run.pruned == ["tasks-20261201-1403"]
    assert _assert_every_document_names_objects_that_are_there(app) == ["tasks-20261201-1404", "tasks-20261201-1405"]
    assert _objects_there(app) == _named(app)  # nothing else kept there
    local = _objects_in(app.store)
    assert _objects_there(app) < local  # the local store keeps its own (7 daily + 4 weekly)
    pruned = [line for line in read_lines(app.directory / "destinations.log") if line["event"] == "prune"]
    assert [line["backup"] for line in pruned] == [f"tasks-20261201-140{minute}" for minute in (1, 2, 3)]


def _killed_child(app: App, point: str, prune: bool) -> int:
    import os
    import subprocess
    import sys

    code = ("import sys; from datetime import datetime; from pathlib import Path; "
            "from railguard.config import load_settings; from railguard.destinations.replicate import replicate; "
            "s = load_settings(Path(sys.argv[1])); "
            "replicate(s, 'tasks', s.apps['tasks'], now=datetime.fromisoformat(sys.argv[2]), prune=sys.argv[3] == '1', "
            "notify=False)")
    child = subprocess.run([sys.executable, "-c", code, str(app.config()), app.now.isoformat(), "1" if prune else "0"],
                           env={**os.environ, "RAILGUARD_PAGES_KILL_AT": point}, capture_output=True, text=True,
                           timeout=120)
    return child.returncode


@pytest.mark.parametrize("point", ["dest-gc-between", "dest-gc"])
def test_a_prune_killed_between_documents_and_objects_leaves_orphans_the_next_run_removes(
        tmp_path: Path, point: str, small_packs: None) -> None:
    app = App(tmp_path, file_destination(tmp_path, retention=KEEP_2_LAST))
    for _ in range(4):
        app.take(new_rows=20, churn=True)
        assert app.replicate().ok  # no prune yet: four generations there

    assert _killed_child(app, point, prune=True) == -9

    kept = _assert_every_document_names_objects_that_are_there(app)
    assert kept == ["tasks-20261201-1403", "tasks-20261201-1404"]
    assert _objects_there(app) > _named(app)  # orphans left
    run = app.replicate(prune=True)
    assert run.ok, run.summary()
    assert _objects_there(app) == _named(app)
    assert _assert_every_document_names_objects_that_are_there(app) == kept


def test_a_replicate_killed_between_objects_leaves_no_document_naming_a_missing_one(tmp_path: Path) -> None:
    app = App(tmp_path, file_destination(tmp_path))
    app.take(new_rows=20)
    assert app.replicate().ok
    app.take(new_rows=400)

    assert _killed_child(app, "dest-object", prune=False) == -9

    assert _assert_every_document_names_objects_that_are_there(app) == ["tasks-20261201-1401"]
    run = app.replicate()
    assert run.ok and run.copied == ["tasks-20261201-1402"], run.summary()
    assert _assert_every_document_names_objects_that_are_there(app) == ["tasks-20261201-1401", "tasks-20261201-1402"]


def test_generations_travel_once_and_read_back_on_every_backend(tmp_path: Path, backend: Backend) -> None:
    app = App(tmp_path, backend.settings)
    sent = []
    for _ in range(2):
        result = app.take(new_rows=20)
        run = app.replicate()
        assert run.ok and run.copied == [result.manifest.name], run.summary()
        sent.append(run.bytes)
    raw = backend.raw_keys()
    # The store's folder (S3: the keys under it), beside where the whole-file copies go.
    assert any(key == "tasks.pages" or key.startswith("tasks.pages/packs/") for key in raw), raw
    copies = app.copies()
    held = copies.held()
    assert [generation.is_good for generation in held] == [True, True]
    stored = {item.key: item.size for generation in held for item in generation.objects}
    assert sum(stored.values()) == sum(sent)  # every object sent once
    fetched = copies.fetch(held, _private(tmp_path / "fetched"))
    from railguard.pages.rebuild import rebuild_generation

    newest = fetched[held[-1].name]
    assert not isinstance(newest, Exception), newest
    with rebuild_generation(newest.store, newest.manifest, _private(tmp_path / "scratch")) as rebuilt:
        assert contents(rebuilt.path) == contents(app.database)
    again = app.replicate()
    assert (again.copied, again.bytes) == ([], 0)


def test_the_backup_job_copies_each_new_generation_to_the_destinations(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    app = App(tmp_path, file_destination(tmp_path))
    first = run_cli("--config", app.config(), "backup", "--json")
    assert first.exit_code == 0, first.stderr
    report = json.loads(first.stdout)
    name = report["manifest"]["name"]
    [step] = report["steps"]["destinations"]
    assert (step["name"], step["ok"], step["copied"]) == ("nas", True, [name])
    assert (tmp_path / "nas" / "tasks.pages" / f"{name}.generation.json").is_file()
    listed = json.loads(run_cli("--config", app.config(), "backups", "list", "--dest", "nas", "--json").stdout)
    assert [(item["name"], item["good"]) for item in listed["backups"]] == [(name, True)]


def test_stale_temporaries_of_killed_uploads_in_the_packs_folder_are_removed(tmp_path: Path) -> None:
    import os

    app = App(tmp_path, file_destination(tmp_path))
    app.take()
    assert app.replicate().ok
    packs = tmp_path / "nas" / "tasks.pages" / "packs"
    stale = packs / f".{'0' * 64}.pack.tmp-1234-abcdef"
    fresh = packs / f".{'1' * 64}.pack.tmp-1234-abcdef"
    for path in (stale, fresh):
        path.write_bytes(b"half an upload")
    day_ago = (app.now - timedelta(days=2)).timestamp()
    os.utime(stale, (day_ago, day_ago))
    app.take()
    assert app.replicate().ok
    assert not stale.exists() and fresh.exists()  # a concurrent upload's is left alone


def test_a_generation_pruned_here_while_it_is_copied_is_skipped_not_failed(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    app = App(tmp_path, file_destination(tmp_path))
    result = app.take()
    from railguard.destinations import generations as module

    real = module._open_local

    def pruned_meanwhile(path: Path, generation: str):  # type: ignore[no-untyped-def]
        result.path.unlink()  # the local prune removed the manifest, then its packs
        path.unlink()
        return real(path, generation)

    monkeypatch.setattr(module, "_open_local", pruned_meanwhile)
    run = app.replicate()
    assert run.ok and run.copied == [] and run.failed == [], run.summary()
    assert not list((tmp_path / "nas").rglob("*.generation.json"))


def test_railguard_prune_prunes_generations_there_and_waits_for_no_replicate(tmp_path: Path, run_cli,  # type: ignore[no-untyped-def]
                                                                            small_packs: None) -> None:
    app = App(tmp_path, file_destination(tmp_path, retention=KEEP_2_LAST))
    for _ in range(4):
        app.take(new_rows=20, churn=True)
        assert app.replicate().ok
    config = app.config()
    from railguard.destinations.configured import replication_lock

    with replication_lock(app.directory, "tasks"):  # a replicate is running
        busy = run_cli("--config", config, "prune", "--json")
    assert busy.exit_code == 1
    [item] = json.loads(busy.stdout)["destinations"]
    assert item["error"] == "another railguard run is already working on copies of tasks to its destinations"
    assert len(app.copies().held()) == 4  # nothing removed there

    result = run_cli("--config", config, "prune", "--json")

    assert result.exit_code == 0, result.stdout
    [item] = json.loads(result.stdout)["destinations"]
    assert item["removed"] == ["tasks-20261201-1401", "tasks-20261201-1402"]
    assert item["collected"] > 0
    assert _assert_every_document_names_objects_that_are_there(app) == ["tasks-20261201-1403", "tasks-20261201-1404"]
    assert _objects_there(app) == _named(app)


def test_an_unreadable_document_there_is_listed_as_such_and_holds_back_the_collection(tmp_path: Path, run_cli,  # type: ignore[no-untyped-def]
                                                                                      small_packs: None) -> None:
    app = App(tmp_path, file_destination(tmp_path, retention=KEEP_2_LAST))
    for _ in range(3):
        app.take(new_rows=20, churn=True)
        assert app.replicate().ok
    (tmp_path / "nas" / "tasks.pages" / "tasks-20261201-1330.generation.json").write_text("{not json")
    listed = json.loads(run_cli("--config", app.config(), "backups", "list", "--dest", "nas", "--json").stdout)
    first = listed["backups"][0]
    assert (first["name"], first["good"]) == ("tasks-20261201-1330", False)
    assert first["status"].startswith("unreadable document (")
    before = _objects_there(app)

    run = app.replicate(prune=True)

    assert run.pruned == ["tasks-20261201-1401"]  # its document goes; the unreadable one is left to you
    assert _objects_there(app) == before  # it might name any object: none is removed while it is there
    (tmp_path / "nas" / "tasks.pages" / "tasks-20261201-1330.generation.json").unlink()
    app.replicate(prune=True)
    assert _objects_there(app) == _named(app)
