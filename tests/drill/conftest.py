"""Fixtures of the drill tests (helpers in sites.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import create_tasks_database
from drill.sites import Site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    data = tmp_path / "prod" / "data"
    data.mkdir(parents=True)
    database = create_tasks_database(data / "tasks.db", rows=25)
    return Site(tmp_path, database, tmp_path / "backups", tmp_path / "railguard.toml")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No heartbeat or notification URL from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("RAILGUARD_"):
            monkeypatch.delenv(name, raising=False)


def _docker_fixtures():  # type: ignore[no-untyped-def]
    """tests/docker/conftest.py (issue 4) starts the engine and builds the example app's image.
    Loaded by path: the name ``docker`` is the Docker SDK's package in this environment."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "docker" / "conftest.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("railguard_tests_docker_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_docker = _docker_fixtures()
if _docker is not None:
    docker_engine = _docker.docker_engine
    base_image = _docker.base_image
    app_image = _docker.app_image
else:
    @pytest.fixture(scope="session")
    def app_image() -> str:
        pytest.skip("tests/docker/conftest.py (the Docker engine and image fixtures) is not in this tree")
