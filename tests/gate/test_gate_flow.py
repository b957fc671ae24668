"""The gate end to end: signed Forgejo pushes into a real uvicorn on 127.0.0.1, a real bare
repository as the remote, the fake CapRover and the fake Forgejo status API recording every call."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

from fakes.forgejo import push_payload
from gate.conftest import ZERO, Remote, RunningCapRover


def _declare_body(url: str, path: str, length: int) -> int:
    """Send only the headers of a request whose body would be ``length`` bytes; the gate must
    refuse it before reading any of it."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def _uploads(captain: RunningCapRover) -> list:
    return [call for call in captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")]


def test_a_passing_push_is_tested_then_exactly_that_commit_deployed_smoked_and_announced_once(
        start_gate, remote: Remote, captain: RunningCapRover, forgejo, inbox) -> None:
    gate = start_gate(smoke=True)
    sha = remote.commit("add due dates", {"due.ts": "export const due = 1\n"})
    pushed, status, answer = gate.push_and_deliver()
    assert (pushed, status, answer["queued"]) == (sha, 202, True)

    run = gate.wait_for_run(answer["run"])

    assert run["status"] == "deployed", run
    assert forgejo.states_for(sha) == ["pending", "success"]
    statuses = forgejo.statuses_for(sha)
    assert {s.context for s in statuses} == {"railguard/tests"}
    assert all(s.target_url == f"{gate.url}/runs/{run['id']}" for s in statuses)
    [upload] = _uploads(captain)
    assert upload.fields["gitHash"] == sha
    assert upload.files["sourceFile"] == remote.archive(sha)
    assert captain.runtime is not None and captain.runtime.served == [(sha, False)]
    assert "smoke OK" in run["summary"] and "12 pass" in run["log"]
    assert inbox.titles() == [f"tasks deploy OK {sha[:12]}"]


def test_a_replayed_delivery_is_ignored_and_deploy_ok_is_never_sent_twice(start_gate, remote: Remote,
                                                                           captain: RunningCapRover, inbox) -> None:
    gate = start_gate(smoke=True)
    before = remote.sha()
    sha = remote.commit("one change")
    assert remote.push().returncode == 0
    payload = push_payload(ref="refs/heads/main", before=before, after=sha, clone_url=remote.clone_url)
    status, answer = gate.deliver(payload, delivery="5b2c1d3e-0000-4000-8000-000000000001")
    gate.wait_for_run(answer["run"])

    again_status, again = gate.deliver(payload, delivery="5b2c1d3e-0000-4000-8000-000000000001")

    assert (status, again_status) == (202, 200)
    assert again == {"ok": True, "queued": False, "reason": "duplicate delivery, already handled"}
    assert [run["id"] for run in gate.runs()] == [answer["run"]]
    assert len(_uploads(captain)) == 1
    assert inbox.titles() == [f"tasks deploy OK {sha[:12]}"]


def test_a_failing_push_gets_a_failure_status_and_is_not_deployed(start_gate, remote: Remote,
                                                                  captain: RunningCapRover, forgejo, inbox) -> None:
    gate = start_gate()
    sha = remote.commit("break the tasks count", {"FAIL": "yes\n"})
    _, status, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"])

    assert status == 202 and run["status"] == "failed"
    assert forgejo.states_for(sha) == ["pending", "failure"]
    assert "exit code 1" in forgejo.statuses_for(sha)[-1].description
    assert "expected 3 tasks, got 2" in run["log"]
    assert _uploads(captain) == []
    assert inbox.titles() == [f"tasks: {sha[:12]} not deployed, tests failed"]


def test_a_wrong_signature_gets_401_and_queues_nothing(start_gate, remote: Remote) -> None:
    gate = start_gate()
    sha = remote.commit("sneaky")
    payload = push_payload(ref="refs/heads/main", before=remote.sha("HEAD~1"), after=sha, clone_url=remote.clone_url)

    wrong, answer = gate.deliver(payload, secret="not-the-secret")
    body = json.dumps(payload).encode()
    unsigned, _, _ = gate.request("POST", "/hooks/forgejo", body, {"X-Forgejo-Event": "push",
                                                                   "Content-Type": "application/json"})

    assert (wrong, unsigned) == (401, 401)
    assert "does not match" in answer["error"]
    assert gate.runs() == []
    assert gate.service.queue.list() == []


def test_each_signature_header_forgejo_sends_is_accepted_on_its_own(start_gate, remote: Remote) -> None:
    gate = start_gate()
    answers = []
    for which in ("forgejo", "gitea", "hub"):
        payload = push_payload(ref="refs/heads/feature", before=ZERO, after=remote.sha(), clone_url=remote.clone_url)
        answers.append(gate.deliver(payload, which=which))
    assert [status for status, _ in answers] == [202, 202, 202]
    assert all(answer["reason"] == "push to 'feature', not 'main'" for _, answer in answers)


def test_bad_bodies_get_400_and_413_and_other_events_tags_and_deletions_are_ignored(start_gate,
                                                                                     remote: Remote) -> None:
    gate = start_gate()
    sha = remote.sha()

    def push(**fields: str) -> dict:
        payload = push_payload(ref="refs/heads/main", before=ZERO, after=sha, clone_url=remote.clone_url)
        payload.update(fields)
        return payload

    malformed = gate.deliver(b"{not json")
    no_after = gate.deliver(push(after="HEAD; rm -rf /"))
    too_large = _declare_body(gate.url, "/hooks/forgejo", 1024 * 1024 + 1)
    issue_event = gate.deliver({"action": "opened"}, event="issues")
    tag = gate.deliver(push(ref="refs/tags/v1.0.0"))
    deleted = gate.deliver(push(after=ZERO, before=sha))
    other_repo = gate.deliver(push_payload(ref="refs/heads/main", before=ZERO, after=sha,
                                           clone_url="https://evil.example/dev/tasks.git"))

    assert malformed[0] == 400 and "not JSON" in malformed[1]["error"]
    assert no_after[0] == 400 and "'after' is not a commit SHA" in no_after[1]["error"]
    assert too_large == 413
    assert issue_event == (202, {"ok": True, "queued": False, "reason": "event 'issues' is not a push"})
    assert tag[1]["reason"] == "tag push 'v1.0.0': tasks deploys the branch 'main'"
    assert deleted[1]["reason"] == "refs/heads/main was deleted"
    assert other_repo[1]["reason"].startswith("no gate app is configured for the repository")
    assert gate.runs() == []


def test_ten_quick_pushes_test_at_most_twice_and_deploy_only_the_newest_tested_commit(
        start_gate, remote: Remote, captain: RunningCapRover, forgejo, tmp_path: Path) -> None:
    # The suite waits on a file outside its tree, which an isolated suite cannot see; this test is
    # about coalescing pushes, and the sandbox has its own tests (tests/gate/test_isolation.py).
    gate = start_gate(gate={"isolation": "none"})
    # Each suite waits until every push is delivered, so the later pushes arrive while the first
    # is tested however slowly they go (a 3 s suite let a loaded machine's pushes straggle past
    # it, and a third commit was tested).
    release = tmp_path / "every-push-delivered"
    commits = [remote.commit(f"change {number}", {"HOLD": f"{release}\n", "n.txt": f"{number}\n"})
               for number in range(10)]
    pushed, before = [], remote.sha("HEAD~10")
    for sha in commits:
        assert remote.push(f"{sha}:refs/heads/main").returncode == 0
        status, _ = gate.deliver(push_payload(ref="refs/heads/main", before=before, after=sha,
                                              clone_url=remote.clone_url))
        assert status == 202
        pushed.append(sha)
        before = sha
    release.touch()

    runs = gate.wait_idle()

    tested = [run for run in runs if run["tests_started_at"]]
    assert 1 <= len(tested) <= 2
    superseded = [run for run in runs if run["status"] == "superseded"]
    assert len(superseded) == 10 - len(tested)
    passed = {run["commit_sha"] for run in tested if run["status"] == "deployed"}
    deployed = [call.fields["gitHash"] for call in _uploads(captain)]
    assert deployed and deployed[-1] == pushed[-1]
    assert set(deployed) <= passed
    for sha in set(pushed) - passed:
        assert "success" not in forgejo.states_for(sha)


def test_a_failed_smoke_check_rolls_back_to_the_previous_image(start_gate, remote: Remote, captain: RunningCapRover,
                                                              inbox) -> None:
    gate = start_gate(smoke=True, smoke_wait="3s")
    good = remote.commit("good")
    _, _, first = gate.push_and_deliver()
    assert gate.wait_for_run(first["run"])["status"] == "deployed"
    bad = remote.commit("migration the live database cannot take", {"SMOKE_FAIL": "1\n"})
    _, _, second = gate.push_and_deliver()

    run = gate.wait_for_run(second["run"])

    assert run["status"] == "rolled_back", run
    uploads = _uploads(captain)
    assert [call.fields.get("gitHash") for call in uploads] == [good, bad, good]
    rollback = json.loads(uploads[-1].fields["captainDefinitionContent"])
    assert rollback == {"schemaVersion": 2, "dockerfileLines": ["FROM img-captain-tasks:0"]}
    assert "migrations failed" in run["summary"] and f"rolled back to {good[:12]}" in run["summary"]
    assert captain.runtime is not None and captain.runtime.served[-1] == (good, False)
    assert inbox.titles() == [f"tasks deploy OK {good[:12]}", "tasks deploy FAILED",
                              f"tasks rolled back to {good[:12]}"]


def test_legacy_webhook_mode_triggers_caprover_and_checks_the_live_commit(start_gate, remote: Remote,
                                                                          captain: RunningCapRover) -> None:
    gate = start_gate(smoke=True, gate_app={"deploy_mode": "legacy-webhook"})
    sha = remote.commit("through the build webhook")
    _, _, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"])

    assert run["status"] == "deployed", run
    [trigger] = captain.calls_to("/api/v2/user/apps/webhooks/triggerbuild")
    assert trigger.headers["x-github-event"] == "push"
    assert json.loads(trigger.body)["ref"] == "refs/heads/main"
    assert captain.deployments[-1].source == "webhook" and captain.deployments[-1].git_hash == sha
    assert f"serving {sha}" in run["log"]


def test_legacy_webhook_mode_reports_the_race_when_a_later_push_went_live(start_gate, remote: Remote,
                                                                          captain: RunningCapRover) -> None:
    # CapRover's webhook queues a build and clones the branch head when the build starts.
    captain.webhook_builds = "queued"
    # The smoke check waits while the test pushes a later commit and CapRover builds it (a git
    # push and an app restart): 4 s was not always enough on a loaded machine. It waits the whole
    # window, since the live commit never becomes the tested one.
    gate = start_gate(smoke=True, smoke_wait="15s",
                      gate_app={"deploy_mode": "legacy-webhook", "rollback_on_smoke_failure": False})
    tested = remote.commit("tested")
    _, _, answer = gate.push_and_deliver()
    deadline = time.monotonic() + 30
    while not captain.calls_to("/api/v2/user/apps/webhooks/triggerbuild"):
        assert time.monotonic() < deadline, gate.get_json(f"/runs/{answer['run']}")
        time.sleep(0.05)
    later = remote.commit("pushed while the build was queued", {"FAIL": "untested and failing\n"})
    assert remote.push().returncode == 0
    captain.run_queued_webhook_builds()

    run = gate.wait_for_run(answer["run"])

    assert run["status"] == "smoke_failed", run
    assert f"live commit {later[:12]} is not the tested {tested[:12]}" in run["summary"]


def test_a_push_the_gate_missed_is_caught_up_on_the_next_start(write_config, gate_env, remote: Remote,
                                                                captain: RunningCapRover) -> None:
    from gate.conftest import serve_gate

    config = write_config()
    with serve_gate(config, gate_env, remote) as first:
        deadline = time.monotonic() + 30
        while first.service.queue.known_commit("tasks") is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    sha = remote.commit("pushed while the gate was down")
    assert remote.push().returncode == 0

    with serve_gate(config, gate_env, remote) as gate:
        runs = gate.wait_idle()

    assert [(run["source"], run["commit_sha"], run["status"]) for run in runs] == [("catch-up", sha, "deployed")]
    assert [call.fields["gitHash"] for call in _uploads(captain)] == [sha]


def test_runs_are_readable_as_json_and_html_and_the_gate_reports_health_and_metrics(start_gate,
                                                                                     remote: Remote) -> None:
    gate = start_gate()
    sha = remote.commit("<script>alert(1)</script> in a title")
    _, _, answer = gate.push_and_deliver()
    gate.wait_for_run(answer["run"])

    status, page, headers = gate.request("GET", f"/runs/{answer['run']}", headers={"Accept": "text/html"})
    _, listing, _ = gate.request("GET", "/runs", headers={"Accept": "text/html,application/xhtml+xml"})
    missing, _, _ = gate.request("GET", "/runs/999")
    health = gate.get_json("/healthz")
    _, metrics, _ = gate.request("GET", "/metrics")

    text = page.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert sha in text and "deployed" in text and "12 pass" in text
    assert "<script>alert" not in text and "&lt;script&gt;" in text
    assert f"/runs/{answer['run']}" in listing.decode()
    assert missing == 404
    assert health["ok"] is True
    assert 'railguard_gate_deliveries_total{outcome="queued"} 1.0' in metrics.decode()
    assert 'railguard_gate_runs{app="tasks",status="deployed"} 1.0' in metrics.decode()


def test_no_secret_reaches_a_log_an_answer_a_status_or_the_test_run(start_gate, remote: Remote, forgejo,
                                                                    captain: RunningCapRover, gate_logs,
                                                                    tmp_path: Path) -> None:
    from gate.conftest import SECRETS

    gate = start_gate(smoke=True)
    remote.commit("passes")
    gate.push_and_deliver()
    remote.commit("fails", {"FAIL": "1\n"})
    gate.push_and_deliver()
    gate.deliver(push_payload(ref="refs/heads/main", before=ZERO, after=remote.sha(), clone_url=remote.clone_url),
                 secret="wrong")
    runs = gate.wait_idle()
    for run in runs:
        gate.request("GET", f"/runs/{run['id']}", headers={"Accept": "text/html"})
        gate.request("GET", f"/runs/{run['id']}")
    gate.request("GET", "/metrics")
    gate.request("GET", "/healthz")

    assert any("env: PATH=" in run_log for run_log in gate.answers)  # the suite's environment is in the logs
    seen = [*gate.answers, gate_logs.text]
    seen += [path.read_text() for path in (tmp_path / "state").rglob("*.log")]
    seen += [s.description + s.target_url for s in forgejo.statuses]
    seen += [(tmp_path / "state" / "notifications.json").read_text()]
    for secret in SECRETS:
        assert not [text for text in seen if secret in text], f"{secret} leaked"


def test_a_status_forgejo_refuses_is_logged_and_the_run_goes_on(start_gate, gate_env, remote: Remote,
                                                                captain: RunningCapRover, forgejo) -> None:
    gate_env["FORGEJO_TOKEN"] = "a-revoked-token"
    gate = start_gate()
    sha = remote.commit("statuses cannot be posted")
    _, _, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"])

    assert run["status"] == "deployed"
    assert "commit status: Forgejo refused the pending status: HTTP 401 " in run["log"]
    assert "; hint: Forgejo does not know the token: set the variable gate.forgejo_token_env names" in run["log"]
    assert forgejo.statuses_for(sha) == [] and [c.http_status for c in forgejo.calls] == [401, 401]
    assert [call.fields["gitHash"] for call in _uploads(captain)] == [sha]
    assert "a-revoked-token" not in run["log"]


def test_an_old_or_live_commit_pushed_again_is_not_deployed_again(start_gate, remote: Remote,
                                                                       captain: RunningCapRover, forgejo) -> None:
    gate = start_gate()
    older = remote.commit("older, pushed together with old")
    old = remote.commit("old")
    _, _, first = gate.push_and_deliver()
    assert gate.wait_for_run(first["run"])["status"] == "deployed"
    new = remote.commit("new")
    _, _, second = gate.push_and_deliver()
    assert gate.wait_for_run(second["run"])["status"] == "deployed"

    # A force-push back to a commit the gate never ran: tested for nothing? No: skipped.
    assert remote.push(f"+{older}:refs/heads/main").returncode == 0
    _, back = gate.deliver(push_payload(ref="refs/heads/main", before=new, after=older, clone_url=remote.clone_url))
    skipped = gate.wait_for_run(back["run"])
    # A force-push back to the live commit: the same app, ref and `after` as run 2, like a Replay.
    assert remote.push(f"+{new}:refs/heads/main").returncode == 0
    status, again = gate.deliver(push_payload(ref="refs/heads/main", before=older, after=new,
                                              clone_url=remote.clone_url))
    assert (skipped["status"], skipped["summary"]) == ("skipped", f"older than the live {new[:12]}")
    assert (status, again["queued"], again["run"]) == (200, False, second["run"])
    assert [call.fields["gitHash"] for call in _uploads(captain)] == [old, new]
    assert forgejo.states_for(older)[-1] == "warning"


def test_forgejos_replay_with_a_new_delivery_id_queues_nothing_and_deploy_ok_is_sent_once(
        start_gate, remote: Remote, captain: RunningCapRover, inbox) -> None:
    gate = start_gate(smoke=True)
    before = remote.sha()
    sha = remote.commit("one change")
    assert remote.push().returncode == 0
    payload = push_payload(ref="refs/heads/main", before=before, after=sha, clone_url=remote.clone_url)
    _, answer = gate.deliver(payload, delivery="5b2c1d3e-0000-4000-8000-000000000001")
    assert gate.wait_for_run(answer["run"])["status"] == "deployed"

    # models/webhook/hooktask.go ReplayHookTask: the same payload, a new X-Forgejo-Delivery.
    status, replay = gate.deliver(payload, delivery="5b2c1d3e-0000-4000-8000-000000000002")

    assert (status, replay["queued"], replay["run"]) == (200, False, answer["run"])
    assert replay["reason"] == (f"refs/heads/main at {sha[:12]} is already run {answer['run']} (deployed): "
                                "a replayed delivery queues nothing")
    assert [run["id"] for run in gate.runs()] == [answer["run"]]
    assert len(_uploads(captain)) == 1
    assert inbox.titles() == [f"tasks deploy OK {sha[:12]}"]
