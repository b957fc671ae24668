"""The example app's image under a real Docker engine: the strict HEALTHCHECK sees what
/health says, and the plan's original `|| exit 0` check does not (the bug doctor reports)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import pytest

from railguard.doctor import diagnose

from .conftest import APP_DIR, docker

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]

BROKEN_DB = "/app/missing/tasks.db"
#: The plan's original check, with the probe in place of curl (the image has no curl).
ORIGINAL_CHECK = 'python3 -I -S /app/probe.py "http://127.0.0.1:${PORT}/health" || exit 0'


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_example_apps_image_becomes_healthy(run_container):
    container = run_container(env={"CAPROVER_GIT_COMMIT_SHA": "c0ffee1"})
    health = container.wait_for_health("healthy", output=f"ok 200 http://127.0.0.1:{container.port}/health ")
    assert health["Log"][-1]["ExitCode"] == 0
    status, body = get(container.port, "/version")
    assert (status, json.loads(body)["commit"]) == (200, "c0ffee1")


def test_with_a_broken_database_path_the_image_becomes_unhealthy(run_container):
    container = run_container(env={"DB_PATH": BROKEN_DB})
    health = container.wait_for_health("unhealthy", output="unhealthy: status 503", checks_at_least=2)
    last = health["Log"][-1]
    assert last["ExitCode"] == 1
    assert last["Output"] == (f"unhealthy: status 503 (expected 200): http://127.0.0.1:{container.port}/health "
                              "database unavailable: directory /app/missing does not exist (is the volume mounted?)\n")


def test_the_original_exit_0_healthcheck_stays_healthy_while_health_fails(run_container, tmp_path):
    container = run_container("--health-cmd", ORIGINAL_CHECK, env={"DB_PATH": BROKEN_DB})
    # Three checks in a row, each after /health failed: two would already mark a strict check unhealthy.
    health = container.wait_for_health("healthy", output="unhealthy: status 503", checks_at_least=3)
    assert {entry["ExitCode"] for entry in health["Log"]} == {0}
    assert get(container.port, "/health")[0] == 503
    assert health["FailingStreak"] == 0
    # ... and that is exactly what doctor reports on a Dockerfile carrying this check.
    (tmp_path / "Dockerfile").write_text(f"FROM x\nVOLUME /app/data\nHEALTHCHECK CMD {ORIGINAL_CHECK}\n")
    assert [f.rule for f in diagnose(tmp_path).findings if f.severity.value == "error"] == ["healthcheck-cannot-fail"]


def test_docker_stop_reaches_the_app_through_startup_sh(run_container):
    container = run_container()
    container.wait_for_health("healthy")
    # With a 60 s grace period, exit code 0 means SIGTERM reached the app and it shut down;
    # a shell that did not exec would have kept it from the app (SIGKILL: 137).
    docker("stop", "--time", "60", container.id, timeout=120)
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container.id))
    assert state["ExitCode"] == 0
    assert container.logs().strip().splitlines()[-1] == "tasks-app: stopped"


def test_what_init_writes_for_python_builds_and_becomes_healthy(run_cli, run_container, base_image, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(APP_DIR / "app.py", project / "app.py")
    result = run_cli("init", "--runtime", "python", "--base-image", base_image, project)
    assert result.exit_code == 0, result.stderr
    image = "railguard-init-python:test"
    docker("build", "--quiet", "--tag", image, str(project), timeout=600)
    container = run_container(image=image)
    health = container.wait_for_health("healthy", output=f"ok 200 http://127.0.0.1:{container.port}/health ")
    assert health["Log"][-1]["ExitCode"] == 0
