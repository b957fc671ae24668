"""The steps before a deploy: run under the lock after the history row is started and before
CapRover is asked; the first that fails blocks the deploy (history ``blocked``, exit 7, CapRover
never called); what a step found reaches the later steps and the post-deploy steps. Real git, the
fake CapRover on 127.0.0.1, the library's own flows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from deploy.gitrepos import APP_TOKEN, Repo
from fakes.caprover import FakeApp, FakeCapRover

from railguard.config import load_settings
from railguard.deploy import (DeployBlocked, DeployJob, DeployState, PostDeployContext, PreDeployContext, StepResult,
                              build_deployer, deploy_commit, rollback)
from railguard.deploy.git import Git
from railguard.deploy.state import state_path
from railguard.errors import ExitCode, RailguardError
from railguard.notify.notifier import Delivery

UPLOAD = "/api/v2/user/apps/appData/tasks"
T = datetime(2026, 12, 2, 3, 30, tzinfo=timezone.utc)


class Owner:
    """A notifier that keeps what it was told (the flows call only ``notify``)."""

    def __init__(self) -> None:
        self.titles: list[str] = []

    def notify(self, event: str, title: str, body: str, **_: object) -> Delivery:
        self.titles.append(title)
        return Delivery(status="sent")


def make_job(config: Path, *pre: Callable[[PreDeployContext], StepResult],
             post: tuple[Callable[[PostDeployContext], StepResult], ...] = (), unattended: bool = False,
             owner: Owner | None = None) -> DeployJob:
    settings = load_settings(config)
    app = settings.apps["tasks"]
    return DeployJob(settings=settings, app_name="tasks", app=app,
                     deployer=build_deployer("tasks", app.deploy, env={"CAPROVER_APP_TOKEN": APP_TOKEN}),
                     state=DeployState(state_path(settings.state_dir, app.deploy.state_file)),
                     git=Git(app.deploy.repository), clock=lambda: T, pre_deploy=pre, post_deploy=post,
                     notifier=owner, unattended=unattended)  # type: ignore[arg-type]


def test_passing_steps_run_in_order_before_the_upload_and_hand_their_facts_on(
        write_config: Callable[..., Path], captain: FakeCapRover, captain_app: FakeApp, repo: Repo) -> None:
    seen: list[tuple[str, object]] = []

    def snapshot(context: PreDeployContext) -> StepResult:
        # After the row is started, before CapRover is asked for this deploy: one upload per
        # earlier deploy, none for this one yet.
        row, *earlier = make_job(write_config()).state.history("tasks")
        assert (row.id, row.result) == (context.deploy_id, "pending")
        assert len(captain.calls_to(UPLOAD, "POST")) == len(earlier)
        seen.append(("snapshot", (context.kind, context.commit, context.replaces, context.tar is not None)))
        context.facts["snapshot"] = "tasks-20261202-0330"
        return StepResult("snapshot", True, "took tasks-20261202-0330")

    def rehearsal(context: PreDeployContext) -> StepResult:
        seen.append(("rehearsal", context.facts["snapshot"]))
        return StepResult.skip("rehearsal", "no drill configured")

    def after(context: PostDeployContext) -> StepResult:
        seen.append(("after", context.facts["snapshot"]))
        return StepResult("after", True, "ok")

    first = deploy_commit(make_job(write_config(), snapshot, rehearsal, post=(after,)), "HEAD")
    assert seen == [("snapshot", ("deploy", repo.sha(), None, True)), ("rehearsal", "tasks-20261202-0330"),
                    ("after", "tasks-20261202-0330")]
    assert [step.name for step in first.pre_steps] == ["snapshot", "rehearsal"]
    assert first.facts == {"snapshot": "tasks-20261202-0330"}
    assert first.exit_code is ExitCode.OK

    # The next deploy's steps learn which commit it replaces: the one live now.
    repo.commit("second", {"index.ts": "console.log('v2')\n"})
    seen.clear()
    second = deploy_commit(make_job(write_config(), snapshot), "HEAD")
    assert seen[0] == ("snapshot", ("deploy", repo.sha(), first.record.git_hash, True))
    assert second.replaced == first.record.git_hash


def test_a_failed_step_blocks_the_deploy_before_caprover_is_asked(
        write_config: Callable[..., Path], captain: FakeCapRover, captain_app: FakeApp, repo: Repo) -> None:
    ran: list[str] = []

    def rehearsal(context: PreDeployContext) -> StepResult:
        ran.append("rehearsal")
        return StepResult("rehearsal", False, "migration 0003_due_date failed: NOT NULL constraint failed")

    def never(context: PreDeployContext) -> StepResult:
        ran.append("never")
        return StepResult("window", True, "opened")

    owner = Owner()
    job = make_job(write_config(), rehearsal, never, owner=owner)
    with pytest.raises(DeployBlocked) as blocked:
        deploy_commit(job, "HEAD")
    assert blocked.value.exit_code == ExitCode.CHECK_FAILED
    assert blocked.value.message == (f"deploy of {repo.sha()[:12]} blocked by the rehearsal step: "
                                     "migration 0003_due_date failed: NOT NULL constraint failed")
    assert [step.name for step in blocked.value.steps] == ["rehearsal"] and ran == ["rehearsal"]
    assert not captain.calls_to(UPLOAD, "POST")
    [row] = job.state.history("tasks")
    assert (row.result, row.detail) == ("blocked", blocked.value.message)
    # A person at the terminal reads the error there; nobody is notified twice.
    assert owner.titles == []
    # A blocked deploy is never a rollback target or the live commit.
    assert not row.is_live_candidate


def test_a_step_that_raises_has_failed_and_an_unattended_job_tells_the_owner_once(
        write_config: Callable[..., Path], captain: FakeCapRover, captain_app: FakeApp, repo: Repo) -> None:
    def snapshot(context: PreDeployContext) -> StepResult:
        raise RailguardError("cannot read /app/data/tasks.db: permission denied")

    owner = Owner()
    with pytest.raises(DeployBlocked, match="blocked by the snapshot step: cannot read /app/data/tasks.db"):
        deploy_commit(make_job(write_config(), snapshot, unattended=True, owner=owner), "HEAD")
    assert owner.titles == ["tasks deploy FAILED"]
    assert not captain.calls_to(UPLOAD, "POST")


def test_a_rollback_runs_the_steps_with_the_commit_it_leaves(
        write_config: Callable[..., Path], captain: FakeCapRover, captain_app: FakeApp, repo: Repo) -> None:
    config = write_config()
    first = deploy_commit(make_job(config), "HEAD")
    repo.commit("second", {"index.ts": "console.log('v2')\n"})
    second = deploy_commit(make_job(config), "HEAD")
    seen: list[tuple[str, str | None, str | None]] = []

    def snapshot(context: PreDeployContext) -> StepResult:
        seen.append((context.kind, context.commit, context.replaces))
        return StepResult("snapshot", True, "taken")

    report = rollback(make_job(config, snapshot), None)
    assert seen == [("rollback", first.record.git_hash, second.record.git_hash)]
    assert [step.name for step in report.pre_steps] == ["snapshot"]


def test_a_history_written_before_blocked_existed_keeps_its_rows_and_accepts_it(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    path = tmp_path / "deploys.sqlite3"
    with closing(sqlite3.connect(path)) as db:  # the schema of the history with superseded, before blocked
        db.executescript("""
            CREATE TABLE deploys (id INTEGER PRIMARY KEY, app TEXT NOT NULL, caprover_app TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('deploy', 'release', 'rollback')), ref TEXT, git_hash TEXT,
                tag TEXT, image TEXT, version INTEGER, started_at TEXT NOT NULL, finished_at TEXT,
                result TEXT NOT NULL CHECK (result IN ('pending', 'accepted', 'ok', 'failed', 'superseded')),
                detail TEXT, rolled_back_from TEXT);
            CREATE INDEX deploys_by_app ON deploys (app, id);
            INSERT INTO deploys (app, caprover_app, kind, git_hash, started_at, result)
                VALUES ('tasks', 'tasks', 'deploy', 'aaaa', '2026-11-30T10:00:00+00:00', 'superseded');
        """)
    state = DeployState(path)
    deploy_id = state.start(app="tasks", caprover_app="tasks", kind="deploy", ref="main", git_hash="bbbb", now=T)
    state.finish(deploy_id, result="blocked", now=T, detail="blocked by the rehearsal step")
    assert [(r.git_hash, r.result) for r in state.history("tasks")] == [("bbbb", "blocked"), ("aaaa", "superseded")]
