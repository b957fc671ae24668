"""The CapRover client's transport follows railguard's HTTP policy (docs/http.md): the tar is
streamed from a file, and a redirect is never followed with a token."""

from __future__ import annotations

import pytest
from deploy.gitrepos import APP_TOKEN
from fakes.caprover import FakeCapRover
from local_http import Redirector

from railguard.deploy.caprover import CapRoverClient, CapRoverError, RetryPolicy
from railguard.secrets import Secret


def test_a_tar_on_disk_is_uploaded_from_the_file(captain: FakeCapRover, captain_app, repo, tmp_path) -> None:
    sha = repo.sha()
    tar = tmp_path / "source.tar"
    tar.write_bytes(repo.archive(sha))
    client = CapRoverClient(captain.url, app_token=Secret(APP_TOKEN), timeout=10, retry=RetryPolicy(attempts=0))
    client.deploy_tar("tasks", tar, sha, use_app_token=True)
    upload = captain.calls_to("/api/v2/user/apps/appData/tasks", "POST")[-1]
    assert (upload.files["sourceFile"], upload.fields["gitHash"]) == (tar.read_bytes(), sha)


def test_a_redirect_is_not_followed_with_the_app_token() -> None:
    elsewhere = Redirector(target_path="/stolen")
    captain = Redirector(target_path="/never")
    captain.location = elsewhere.base + "/stolen"
    try:
        client = CapRoverClient(captain.base, app_token=Secret(APP_TOKEN), timeout=10,
                                retry=RetryPolicy(attempts=0))
        with pytest.raises(CapRoverError) as caught:
            client.deploy_definition("tasks", {"schemaVersion": 2}, None, use_app_token=True)
        assert "HTTP 302 without CapRover's JSON envelope" in caught.value.message
        assert elsewhere.requests == []
        assert APP_TOKEN not in caught.value.message
    finally:
        elsewhere.stop()
        captain.stop()
