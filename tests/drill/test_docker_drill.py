"""Docker mode: ``docker run --network host`` of the example app's image, with the drill's copy
mounted as /app/data. Needs a Docker engine (tests/docker/conftest.py starts one where it can);
skipped with the reason otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from drill.sites import make_database_the_app_cannot_migrate, snapshot, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def containers(label: str) -> list[str]:
    result = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter", f"label=railguard.drill={label}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def configure_docker(site, app_image, **extra):  # type: ignore[no-untyped-def]
    return site.configure(command=None, image=app_image, env={"HOST": "127.0.0.1", "CAPROVER_GIT_COMMIT_SHA": "drill"},
                          **{"start_timeout": "60s", **extra})


def test_docker_mode_boots_the_image_on_the_copy_and_passes(run_cli, site, clean_env, app_image):
    site.backup()
    configure_docker(site, app_image, assertions=[{"sql": "SELECT count(*) FROM tasks", "expect": "== 25"}])
    before = snapshot(site.database.parent)
    result = run_cli("--config", site.config, "drill", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert report["mode"] == "docker"
    metrics = next(step for step in report["steps"] if step["name"] == "metrics")
    assert "migrations_ok 1" in metrics["detail"]
    assert containers("tasks") == [], "the drill's container was left behind"
    assert snapshot(site.database.parent) == before
    assert site.scratch_entries() == []


def test_docker_mode_fails_with_the_container_log_when_the_app_cannot_migrate(run_cli, site, clean_env, app_image):
    site.database.unlink()
    make_database_the_app_cannot_migrate(site.database)
    site.backup()
    configure_docker(site, app_image, start_timeout="4s")
    result = run_cli("--config", site.config, "drill", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 7
    assert report["failed_step"] == "health" and "migrations failed" in report["reason"]
    assert any(line.startswith("tasks-app: migrations failed") for line in report["output_tail"])
    assert containers("tasks") == []


def test_railguard_killed_mid_docker_drill_leaves_no_container(site, app_image):
    site.database.unlink()
    make_database_the_app_cannot_migrate(site.database)  # /health stays 503: the drill keeps waiting
    site.backup()
    configure_docker(site, app_image, start_timeout="120s", stop_grace="1s")
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAILGUARD_")}
    railguard = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(site.config), "drill"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: containers("tasks") != [], timeout=60), "the drill's container never started"
        railguard.kill()
        railguard.wait()
        assert wait_until(lambda: containers("tasks") == [], timeout=60), "the container outlived railguard"
        assert wait_until(lambda: site.scratch_entries() == [], timeout=30)
    finally:
        if railguard.poll() is None:
            railguard.kill()
            railguard.wait()
        for container in containers("tasks"):
            subprocess.run(["docker", "rm", "--force", container], capture_output=True, timeout=60)


def test_an_image_that_does_not_exist_fails_with_docker_runs_message(run_cli, site, clean_env, app_image):
    site.backup()
    configure_docker(site, "railguard-no-such-image:never")
    result = run_cli("--config", site.config, "drill", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 7
    assert report["failed_step"] == "health"
    assert report["reason"] == "docker run failed (exit 125) before the app started"
    assert any("railguard-no-such-image" in line for line in report["output_tail"])
