"""The run queue on a real SQLite file: replays, newest wins, restarts."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from railguard.config import Settings
from railguard.gate.queue import RunNotFound, RunQueue, runs_by_deploy

T0 = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc)


def _sha(n: int) -> str:
    return f"{n:040x}"


@pytest.fixture
def queue(tmp_path: Path) -> RunQueue:
    return RunQueue(tmp_path / "gate" / "queue.sqlite3")


def test_a_delivery_id_queues_once(queue: RunQueue) -> None:
    first = queue.enqueue(app="tasks", commit=_sha(1), ref="refs/heads/main", source="webhook", now=T0,
                          delivery_id="d-1")
    replay = queue.enqueue(app="tasks", commit=_sha(1), ref="refs/heads/main", source="webhook", now=T0,
                           delivery_id="d-1")
    assert (first.duplicate, replay.duplicate, replay.run_id) == (False, True, None)
    assert [run.id for run in queue.list()] == [first.run_id]


def test_the_newest_queued_run_is_taken_and_older_ones_are_superseded_per_app(queue: RunQueue) -> None:
    ids = [queue.enqueue(app="tasks", commit=_sha(n), ref="refs/heads/main", source="webhook",
                         now=T0 + timedelta(seconds=n)).run_id for n in range(4)]
    other = queue.enqueue(app="billing", commit=_sha(9), ref="refs/heads/main", source="webhook", now=T0).run_id

    taken = queue.claim_next("tasks", now=T0 + timedelta(minutes=1))

    assert taken is not None and (taken.id, taken.commit_sha, taken.status) == (ids[-1], _sha(3), "running")
    statuses = {run.id: (run.status, run.superseded_by) for run in queue.list()}
    assert [statuses[i] for i in ids[:-1]] == [("superseded", ids[-1])] * 3
    assert statuses[other] == ("queued", None)
    assert queue.claim_next("tasks", now=T0) is None


def test_a_run_left_running_is_marked_interrupted_and_queued_again_unless_newer_work_waits(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    before = RunQueue(path)
    lone = before.enqueue(app="tasks", commit=_sha(1), ref="refs/heads/main", source="webhook", now=T0).run_id
    before.claim_next("tasks", now=T0)
    busy = before.enqueue(app="billing", commit=_sha(2), ref="refs/heads/main", source="webhook", now=T0).run_id
    before.claim_next("billing", now=T0)
    newer = before.enqueue(app="billing", commit=_sha(3), ref="refs/heads/main", source="webhook", now=T0).run_id

    after = RunQueue(path)  # the restarted gate
    recovered = after.recover_interrupted(now=T0 + timedelta(minutes=5))

    [(first, again), (second, none)] = recovered
    assert (first, second, none) == (lone, busy, None)
    assert after.get(lone).status == after.get(busy).status == "interrupted"
    retry = after.get(again)
    assert (retry.status, retry.commit_sha, retry.retry_of, retry.source) == ("queued", _sha(1), lone, "retry")
    assert f"run {newer} (newer) takes over" in after.get(busy).summary


def test_the_catch_up_compares_with_tested_or_waiting_work_then_the_baseline(queue: RunQueue) -> None:
    assert queue.known_commit("tasks") is None
    queue.set_baseline("tasks", _sha(1), now=T0)
    assert queue.known_commit("tasks") == _sha(1)
    run = queue.enqueue(app="tasks", commit=_sha(2), ref="refs/heads/main", source="webhook", now=T0).run_id
    assert queue.known_commit("tasks") == _sha(2)
    assert run is not None
    queue.finish(run, "error", "could not fetch", now=T0)
    assert queue.known_commit("tasks") == _sha(1)  # an errored run does not count as tested


def test_an_unknown_run_is_a_not_found_error_with_a_hint(queue: RunQueue) -> None:
    with pytest.raises(RunNotFound) as caught:
        queue.get(42)
    assert caught.value.hint == "See the runs at GET /runs"


def test_delivery_ids_older_than_the_memory_are_forgotten(queue: RunQueue) -> None:
    queue.seen_delivery("old", now=T0, outcome="ignored")
    queue.seen_delivery("new", now=T0 + timedelta(days=100), outcome="ignored")
    assert queue.forget_deliveries(before=T0 + timedelta(days=10)) == 1
    assert queue.seen_delivery("old", now=T0 + timedelta(days=100), outcome="ignored") is True
    assert queue.seen_delivery("new", now=T0 + timedelta(days=100), outcome="ignored") is False


def test_old_finished_runs_are_forgotten_but_never_the_newest_or_unfinished(queue: RunQueue) -> None:
    ids = []
    for n in range(6):
        run = queue.enqueue(app="tasks", commit=_sha(n), ref="refs/heads/main", source="webhook", now=T0).run_id
        assert run is not None
        ids.append(run)
        if n < 5:
            queue.claim_next("tasks", now=T0)
            queue.finish(run, "passed", "ok", now=T0)
    other = queue.enqueue(app="other", commit=_sha(9), ref="refs/heads/main", source="webhook", now=T0).run_id

    forgotten = queue.forget_old_runs("tasks", keep=2)

    assert forgotten == ids[:4]  # the queued newest and the newest finished stay
    assert sorted(run.id for run in queue.list(app="tasks")) == ids[4:]
    assert queue.known_commit("tasks") == _sha(5)
    assert queue.get(other).app == "other"


# --- Forgejo's Replay: the same payload under a new delivery id ---------------------------------

def _webhook(queue: RunQueue, n: int, delivery: str, ref: str = "refs/heads/main"):  # type: ignore[no-untyped-def]
    return queue.enqueue(app="tasks", commit=_sha(n), ref=ref, source="webhook", now=T0, delivery_id=delivery)


@pytest.mark.parametrize("status", ["queued", "running", "deployed", "skipped", "rolled_back", "smoke_failed"])
def test_a_replay_with_a_new_delivery_id_queues_nothing_while_the_push_has_a_run_or_its_answer(
        queue: RunQueue, status: str) -> None:
    first = _webhook(queue, 1, "d-1").run_id
    assert first is not None
    if status != "queued":
        queue.claim_next("tasks", now=T0)
    if status not in {"queued", "running"}:
        queue.finish(first, status, "done", now=T0)  # type: ignore[arg-type]

    replay = _webhook(queue, 1, "d-2")

    assert (replay.duplicate, replay.run_id, replay.same_as) == (True, None, (first, status))
    assert [run.id for run in queue.list()] == [first]


@pytest.mark.parametrize("status", ["failed", "deploy_failed", "error", "interrupted", "superseded"])
def test_a_replay_of_a_push_whose_run_ended_without_an_answer_tests_it_again(queue: RunQueue, status: str) -> None:
    first = _webhook(queue, 1, "d-1").run_id
    assert first is not None
    queue.finish(first, status, "no answer", now=T0)  # type: ignore[arg-type]

    replay = _webhook(queue, 1, "d-2")

    assert (replay.duplicate, replay.same_as) == (False, None) and replay.run_id is not None
    assert queue.get(replay.run_id).status == "queued"


def test_the_same_commit_on_another_ref_or_from_the_catch_up_is_not_a_replay(queue: RunQueue) -> None:
    first = _webhook(queue, 1, "d-1")
    tag = _webhook(queue, 1, "d-2", ref="refs/tags/v1.0.0")
    catch_up = queue.enqueue(app="tasks", commit=_sha(1), ref="refs/heads/main", source="catch-up", now=T0)
    assert not (first.duplicate or tag.duplicate or catch_up.duplicate)


def test_a_replayed_annotated_tag_is_a_duplicate_after_the_worker_peeled_it_to_its_commit(queue: RunQueue) -> None:
    tag_object, commit = _sha(7), _sha(8)
    first = _webhook(queue, 7, "d-1", ref="refs/tags/v1.0.0").run_id
    assert first is not None
    queue.claim_next("tasks", now=T0)
    queue.update(first, commit_sha=commit)
    queue.finish(first, "deployed", "ok", now=T0)

    replay = queue.enqueue(app="tasks", commit=tag_object, ref="refs/tags/v1.0.0", source="webhook", now=T0,
                           delivery_id="d-2")

    assert replay.same_as == (first, "deployed")


def test_a_queue_file_from_before_the_pushed_column_opens_and_dedupes_on_its_commits(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "queue.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE runs (id INTEGER PRIMARY KEY, app TEXT NOT NULL, commit_sha TEXT NOT NULL,"
                      " ref TEXT NOT NULL, source TEXT NOT NULL, status TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',"
                      " pusher TEXT NOT NULL DEFAULT '', delivery_id TEXT, created_at TEXT NOT NULL, started_at TEXT,"
                      " tests_started_at TEXT, tests_finished_at TEXT, deploy_called_at TEXT, finished_at TEXT,"
                      " summary TEXT NOT NULL DEFAULT '', superseded_by INTEGER, retry_of INTEGER, deploy_id INTEGER);"
                      f" INSERT INTO runs (app, commit_sha, ref, source, status, created_at) VALUES"
                      f" ('tasks', '{_sha(1)}', 'refs/heads/main', 'webhook', 'deployed', '{T0.isoformat()}');")
    old.commit()
    old.close()

    queue = RunQueue(path)
    RunQueue(path)  # a second open finds the column there

    assert _webhook(queue, 1, "d-9").same_as == (1, "deployed")
    assert _webhook(queue, 2, "d-10").run_id == 2


def test_recent_runs_reads_the_queue_in_the_gate_directory_of_the_configuration(tmp_path: Path) -> None:
    from railguard.config import Settings
    from railguard.gate.queue import gate_directory, recent_runs

    default = Settings(state_dir=tmp_path / "state")
    assert gate_directory(default) == tmp_path / "state" / "gate"
    chosen = Settings(state_dir=tmp_path / "state", gate={"directory": str(tmp_path / "elsewhere")})
    assert gate_directory(chosen) == tmp_path / "elsewhere"
    queue = RunQueue(tmp_path / "elsewhere" / "queue.sqlite3")
    ids = [queue.enqueue(app="tasks", commit=_sha(n), ref="refs/heads/main", source="webhook",
                         now=T0 + timedelta(minutes=n)).run_id for n in (1, 2, 3)]
    assert [run.id for run in recent_runs(chosen, limit=2)] == [ids[2], ids[1]]
    assert recent_runs(default) == []


def _settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"state_dir": str(tmp_path / "state"), "gate": {"directory": str(tmp_path / "gate")}})


def test_the_runs_that_made_deploys_are_read_by_deploy_id_without_writing_the_queue(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert runs_by_deploy(settings, "tasks", [1]) == {}
    assert not (tmp_path / "gate").exists()  # a gate that never ran: no queue made for it
    queue = RunQueue(tmp_path / "gate" / "queue.sqlite3")
    made = {}
    for n, (app, deploy_id) in enumerate([("tasks", 7), ("notes", 7), ("tasks", None), ("tasks", 9)], start=1):
        queue.enqueue(app=app, commit=_sha(n), ref="refs/heads/main", source="webhook", now=T0 + timedelta(minutes=n))
        run = queue.claim_next(app, now=T0 + timedelta(minutes=n))
        assert run is not None
        if deploy_id is not None:  # what gate/worker.py stores once the deploy pipeline answered
            queue.update(run.id, deploy_id=deploy_id)
            made[(app, deploy_id)] = run.id
        queue.finish(run.id, "deployed", "ok", now=T0 + timedelta(minutes=n, seconds=30))
    queue.checkpoint()
    path = tmp_path / "gate" / "queue.sqlite3"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    runs = runs_by_deploy(settings, "tasks", [7, 8, 9])
    assert {deploy_id: (run.id, run.app, run.status) for deploy_id, run in runs.items()} == {
        7: (made[("tasks", 7)], "tasks", "deployed"), 9: (made[("tasks", 9)], "tasks", "deployed")}
    assert runs_by_deploy(settings, "notes", [7])[7].id == made[("notes", 7)]  # ids are per app's history
    assert runs_by_deploy(settings, "tasks", []) == {}
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_queue_that_cannot_be_read_gives_no_runs(tmp_path: Path) -> None:
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "queue.sqlite3").write_bytes(b"not a database at all, " * 100)
    assert runs_by_deploy(_settings(tmp_path), "tasks", [1]) == {}
