"""Repositories on disk for doctor: the team's original files, and small ones written per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GOOD_DOCKERFILE = """\
FROM python:3.11-slim
WORKDIR /app
COPY . .
ENV PORT=3000
VOLUME /app/data
HEALTHCHECK CMD python3 -m railguard.probe "http://127.0.0.1:${PORT}/health"
CMD ["./startup.sh"]
"""
GOOD_STARTUP = "#!/bin/sh\nset -eu\nexec python3 app.py\n"
GOOD_DOCKERIGNORE = ".git\nnode_modules\ndata\nbackups\n"
GOOD_CAPTAIN = '{"schemaVersion": 2, "dockerfilePath": "./Dockerfile"}\n'


@pytest.fixture
def original_app(tmp_path: Path) -> Path:
    """A copy of the team's original deploy files (tests/doctor/fixtures/original-app)."""
    target = tmp_path / "original-app"
    shutil.copytree(FIXTURES / "original-app", target)
    return target


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """``make_repo({"Dockerfile": text or None, ...})``: a repository with good deploy files,
    each replaced by the given text (bytes are written as is; None leaves the file out)."""

    made: list[Path] = []

    def make(files: dict[str, str | bytes | None] | None = None) -> Path:
        made.append(tmp_path / f"repo-{len(made) + 1}")
        root = made[-1]
        root.mkdir()
        contents: dict[str, str | bytes | None] = {
            "Dockerfile": GOOD_DOCKERFILE, "startup.sh": GOOD_STARTUP, ".dockerignore": GOOD_DOCKERIGNORE,
            "captain-definition": GOOD_CAPTAIN,
        }
        contents.update(files or {})
        for name, content in contents.items():
            if content is None:
                continue
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        return root

    return make
