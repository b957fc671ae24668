"""The fixtures of a deploy to the fake CapRover, for tests/smoke and tests/monitor (registered
in tests/conftest.py): ``repo``, a real git repository with one commit pushed to main
(:meth:`deploy.gitrepos.Repo.create`), and ``captain``, the fake CapRover on 127.0.0.1 holding
the app ``tasks`` built from it. tests/deploy and tests/gate have their own, in their conftest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy.gitrepos import APP_TOKEN, PASSWORD, WEBHOOK_TOKEN, Repo
from fakes.caprover import FakeCapRover


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo.create(tmp_path)


@pytest.fixture
def captain(repo: Repo) -> Iterator[FakeCapRover]:
    with FakeCapRover(password=PASSWORD) as fake:
        fake.add_app("tasks", app_token=APP_TOKEN, webhook_token=WEBHOOK_TOKEN, repository=repo.origin)
        yield fake
