"""Commit statuses against the fake Forgejo on 127.0.0.1: each refusal gets the hint that fixes it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.forgejo import FakeForgejo
from railguard.gate.forgejo import ForgejoStatuses
from railguard.secrets import Secret

TOKEN = "forgejo-t0ken-never-shown"
SHA = "c" * 40


@pytest.fixture
def served() -> Iterator[dict[str, FakeForgejo]]:
    fakes = {
        "writer": FakeForgejo(token=TOKEN, repositories={"dev/tasks"}, hidden={"dev/secret"}),
        "no scope": FakeForgejo(token=TOKEN, repositories={"dev/tasks"}, scopes={"read:repository"}),
        "reader": FakeForgejo(token=TOKEN, repositories=set(), read_only={"dev/tasks"}),
    }
    for fake in fakes.values():
        fake.__enter__()
    try:
        yield fakes
    finally:
        for fake in fakes.values():
            fake.__exit__(None, None, None)


def _post(fake: FakeForgejo, repository: str, token: str = TOKEN):  # type: ignore[no-untyped-def]
    return ForgejoStatuses(fake.url, Secret(token)).post(repository, SHA, "pending", "testing", None)


def test_a_status_posted_with_a_writing_token_is_stored(served) -> None:
    posted = _post(served["writer"], "dev/tasks")
    assert posted.ok and posted.detail == "pending posted (HTTP 201)"
    assert served["writer"].states_for(SHA) == ["pending"]


def test_a_private_repository_the_token_cannot_see_is_a_404_with_its_own_hint(served) -> None:
    posted = _post(served["writer"], "dev/secret")
    assert not posted.ok and "HTTP 404" in posted.detail
    assert posted.detail.endswith("hint: Forgejo shows no repository dev/secret to this token: check "
                                  "gate.apps.NAME.repository, and that the token's user can see it (a private "
                                  "repository answers 404, not 403)")


def test_a_token_without_the_scope_is_a_403_naming_the_scope_even_for_a_repository_it_cannot_see(served) -> None:
    for repository in ("dev/tasks", "dev/elsewhere"):
        posted = _post(served["no scope"], repository)
        assert not posted.ok and "HTTP 403" in posted.detail
        assert posted.detail.endswith("hint: the token lacks the write:repository scope: create one with it "
                                      "(Settings > Applications)")


def test_a_user_who_may_only_read_is_a_403_about_write_access(served) -> None:
    posted = _post(served["reader"], "dev/tasks")
    assert not posted.ok and "HTTP 403" in posted.detail and "scope" not in posted.detail
    assert posted.detail.endswith("give that user write access (a collaborator with Write), or use a token of a "
                                  "user who has it")


def test_an_unknown_token_is_a_401_and_no_token_is_ever_in_the_detail(served) -> None:
    posted = _post(served["writer"], "dev/tasks", token="wrong-" + TOKEN)
    assert not posted.ok and "HTTP 401" in posted.detail and "Forgejo does not know the token" in posted.detail
    assert TOKEN not in posted.detail
    assert served["writer"].statuses == []
