"""Docker mode of the deploy rehearsal: the candidate's image built with the local engine from the
very tar CapRover gets (``docker build -``, captain-definition's Dockerfile, the build arg
CAPROVER_GIT_COMMIT_SHA: caprover/caprover src/user/ImageMaker.ts ``ensureImage``), then run
on the copy of the snapshot like a Docker-mode drill."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone

import pytest
from rehearsal.candidates import (
    FAILS_ON_EXISTING_ROWS,
    GOOD_MIGRATION,
    AppRepository,
    app_settings,
    make_production_database,
    settings_for,
    take_verified_backup,
)

from railguard.config import DrillSettings
from railguard.rehearsal.rehearse import rehearse

from .conftest import DOCKER_ENV

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


def leftovers(app: str) -> list[str]:
    found = []
    for what, label in ((["ps", "--all"], "railguard.drill"), (["image", "ls"], "railguard.rehearsal")):
        result = subprocess.run(["docker", *what, "--quiet", "--filter", f"label={label}={app}"],
                                capture_output=True, text=True, timeout=60, env=DOCKER_ENV)
        assert result.returncode == 0, result.stderr
        found += result.stdout.split()
    return found


@pytest.mark.parametrize(("migration", "passes"), [(GOOD_MIGRATION, True), (FAILS_ON_EXISTING_ROWS, False)],
                         ids=["good-migration", "fails-on-existing-rows"])
def test_docker_mode_builds_the_candidate_from_the_tar_and_rehearses_it(tmp_path, base_image, migration, passes):
    repository = AppRepository.create(tmp_path / "repo")
    # Nothing can be pulled here: the candidate's Dockerfile starts from the local base image.
    dockerfile = (repository.path / "Dockerfile").read_text()
    local = dockerfile.replace("ARG BASE_IMAGE=python:3.11-slim-bookworm", f"ARG BASE_IMAGE={base_image}")
    assert local != dockerfile, "examples/tasks-app/Dockerfile changed its BASE_IMAGE line: update this test"
    repository.commit("build from the local base", {"Dockerfile": local})
    commit = repository.add_migration(migration)
    production = make_production_database(tmp_path / "prod" / "data" / "tasks.db", rows=20)
    app = app_settings(tmp_path, production, timeout="60s" if passes else "8s")
    app.drill = DrillSettings(image="never-run:installed", env={"HOST": "127.0.0.1"},  # type: ignore[arg-type]
                              start_timeout="60s", stop_grace="5s", scratch_dir=tmp_path / "scratch")
    backup = take_verified_backup(production, app.backup.directory)

    report = rehearse(settings_for(app), "tasks", app, tar=repository.archive(commit), commit=commit, backup=backup,
                      now=datetime.now(timezone.utc), env=DOCKER_ENV)

    assert report.mode == "docker"
    assert report.steps[0].name == "build" and report.steps[0].ok, report.lines()
    assert report.passed is passes, report.lines()
    if passes:
        assert report.change is not None and report.change.schema_changed
    else:
        assert report.failed_migration is not None and report.failed_migration.id == "3"
    assert leftovers("tasks") == [], "the rehearsal's container or image was left behind"
    assert list((tmp_path / "scratch").iterdir()) == []
