"""Tag pushes through the whole gate: a real annotated tag pushed to a real bare repository."""

from __future__ import annotations

import subprocess

from fakes.forgejo import tag_push_payload
from gate.conftest import Remote, RunningCapRover, git


def test_an_annotated_tag_is_tested_deployed_and_given_statuses_on_its_commit_not_the_tag_object(
        start_gate, remote: Remote, captain: RunningCapRover, forgejo) -> None:
    gate = start_gate(gate_app={"deploy_tags": True})
    sha = remote.commit("release 1.0")
    git(remote.work, "tag", "--annotate", "v1.0.0", "--message", "release 1.0")
    tag_object = git(remote.work, "rev-parse", "refs/tags/v1.0.0")
    pushed = subprocess.run(["git", "push", "origin", "main", "refs/tags/v1.0.0"], cwd=remote.work,
                            capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    assert tag_object != sha and git(remote.origin, "cat-file", "-t", tag_object) == "tag"

    status, answer = gate.deliver(tag_push_payload(tag="v1.0.0", after=tag_object, commit=sha,
                                                   clone_url=remote.clone_url))
    run = gate.wait_for_run(answer["run"])

    assert status == 202 and (run["status"], run["commit_sha"]) == ("deployed", sha), run
    assert forgejo.states_for(sha) == ["pending", "success"]
    assert forgejo.states_for(tag_object) == []
    uploads = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")
    assert [call.fields["gitHash"] for call in uploads] == [sha]
    assert uploads[0].files["sourceFile"] == remote.archive(sha)
