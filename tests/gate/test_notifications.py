"""One notification per event, each from one owner: a gate run that fails at the deploy, at the
rollback or at the deploy lock tells the owner once (the library's pipeline), never once from the
pipeline and again from the worker. Real gate under uvicorn, the fake CapRover, and an apprise
``json://`` receiver on 127.0.0.1 counting every message."""

from __future__ import annotations

from typing import Any

from gate.conftest import Remote, RunningCapRover
from local_http import JsonReceiver

from railguard.locking import exclusive_lock

UPLOAD = "/api/v2/user/apps/appData/tasks"


def fail_the_build_of_upload(captain: RunningCapRover, number: int) -> None:
    """CapRover fails the build of the ``number``-th source or image upload (1 is the first)."""
    answer = captain.handle
    uploads = 0

    def handle(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        nonlocal uploads
        if method == "POST" and path.split("?")[0] == UPLOAD:
            uploads += 1
            if uploads == number:
                captain.fail_next_builds = 1
        return answer(method, path, headers, body)

    captain.handle = handle  # type: ignore[method-assign]  # the fake's server calls fake.handle


def test_a_deploy_capRover_fails_is_told_to_the_owner_once(start_gate, remote: Remote, captain: RunningCapRover,
                                                           inbox: JsonReceiver) -> None:
    gate = start_gate()
    fail_the_build_of_upload(captain, 1)
    sha = remote.commit("a build that fails on CapRover")
    _, _, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"])

    assert run["status"] == "deploy_failed", run
    [message] = inbox.messages
    assert message["title"] == "tasks deploy FAILED"
    assert message["message"] == (f"tasks: deploy of {sha} to CapRover app tasks failed: "
                                  "CapRover's build of version 0 of tasks failed")


def test_a_rollback_capRover_fails_is_told_once_after_the_failed_smoke_check(
        start_gate, remote: Remote, captain: RunningCapRover, inbox: JsonReceiver) -> None:
    gate = start_gate(smoke=True, smoke_wait="3s")
    good = remote.commit("good")
    _, _, first = gate.push_and_deliver()
    assert gate.wait_for_run(first["run"])["status"] == "deployed"
    fail_the_build_of_upload(captain, 2)  # the upload after the bad deploy's: the rollback's
    remote.commit("migration the live database cannot take", {"SMOKE_FAIL": "1\n"})
    _, _, second = gate.push_and_deliver()

    run = gate.wait_for_run(second["run"])

    assert run["status"] == "smoke_failed", run
    assert "rollback failed: CapRover's build of version 2 of tasks failed" in run["log"]
    assert inbox.titles() == [f"tasks deploy OK {good[:12]}", "tasks deploy FAILED", "tasks rollback FAILED"]
    assert inbox.messages[-1]["message"] == ("tasks: rollback of the previous deploy to CapRover app tasks failed: "
                                             "CapRover's build of version 2 of tasks failed")


def test_a_gate_deploy_refused_by_the_deploy_lock_is_told_once(start_gate, remote: Remote, captain: RunningCapRover,
                                                               inbox: JsonReceiver, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gate = start_gate()
    (tmp_path / "state").mkdir(exist_ok=True)
    sha = remote.commit("pushed while a hand rollback holds the lock")
    with exclusive_lock(tmp_path / "state" / "deploy-tasks.lock", "a deploy of tasks"):
        _, _, answer = gate.push_and_deliver()
        run = gate.wait_for_run(answer["run"])

    assert run["status"] == "deploy_failed", run
    assert captain.calls_to(UPLOAD) == []
    [message] = inbox.messages
    assert message["title"] == "tasks deploy FAILED"
    assert message["message"] == (f"tasks: deploy of {sha} to CapRover app tasks failed: "
                                  "another railguard run is already working on a deploy of tasks")
