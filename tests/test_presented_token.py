"""One check of a token in an Authorization header (railguard.secrets.presented), shared by the
gate's read and check endpoints and the status page."""

from __future__ import annotations

import base64

import pytest

from railguard.secrets import Secret, presented

TOKEN = Secret("s3cr3t-token")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("header", "accepted"), [
    ("Bearer s3cr3t-token", True),
    ("bearer  s3cr3t-token ", True),
    (basic("anyone", "s3cr3t-token"), True),
    ("Bearer s3cr3t-tokem", False),
    ("Bearer ", False),
    (basic("s3cr3t-token", "wrong"), False),  # the token as the user name is not the password
    ("Basic not-base64!", False),
    ("Token s3cr3t-token", False),
    ("", False),
    (None, False),
])
def test_bearer_or_basic_password_carries_the_token(header: str | None, accepted: bool) -> None:
    assert presented(header, TOKEN) is accepted


def test_without_basic_only_a_bearer_token_is_taken() -> None:
    assert presented("Bearer s3cr3t-token", TOKEN, basic=False)
    assert not presented(basic("x", "s3cr3t-token"), TOKEN, basic=False)
