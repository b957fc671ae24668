"""railguard's own image (the Dockerfile at the repository root), built from the local base
image and run in a real Docker engine next to a host data directory, as a second CapRover app
or a sidecar would run it: a one-off backup, then the daemon, healthy, stopped by SIGTERM."""

from __future__ import annotations

import json
import sqlite3
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import create_tasks_database
from .conftest import DOCKER_ENV, ROOT, Container, docker, free_port
from railguard.backup.catalog import list_backups
from railguard.backup.verify import materialize
from railguard.durable import is_temp_name

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "railguard:test"
#: The image's default user (Dockerfile: ARG RAILGUARD_UID=1000).
RAILGUARD_UID = 1000


@pytest.fixture(scope="module")
def railguard_image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built from the root Dockerfile and .dockerignore, with a wheelhouse/ in the context.

    The wheelhouse is the Dockerfile's offline path, and the one that works here: this machine
    reaches PyPI through a TLS-inspecting proxy whose certificate the base image does not trust
    (and should not be taught to). The host's pip, which trusts it, builds railguard's wheel and
    its dependencies. apt-get (python3-venv) still runs in the build, over Debian's mirror.
    """
    context = tmp_path_factory.mktemp("railguard-image")
    for name in ["Dockerfile", ".dockerignore", "pyproject.toml", "README.md"]:
        shutil.copy2(ROOT / name, context / name)
    shutil.copytree(ROOT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir",
                             str(context / "wheelhouse"), f"{ROOT}[s3,encrypt]"], capture_output=True, text=True,
                            timeout=600)
    if wheels.returncode != 0:
        pytest.skip(f"cannot build the wheelhouse for the image: {wheels.stderr.strip().splitlines()[-1:]}")
    # --network host: the engine here has no bridge, and apt-get needs the network.
    docker("build", "--quiet", "--network", "host", "--build-arg", f"BASE_IMAGE={base_image}", "--tag", IMAGE,
           str(context), timeout=900)
    return IMAGE


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A host data directory owned by the image's uid (as the app's own files would be), holding
    a WAL database with 200 rows, the last 50 still only in the WAL: a writer keeps it open."""
    data = tmp_path / "data"
    data.mkdir()
    database = create_tasks_database(data / "tasks.db", rows=150, wal=True)
    writer = sqlite3.connect(database)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.executemany("INSERT INTO tasks (title, done) VALUES (?, 0)", [(f"in the wal {i}",) for i in range(50)])
    writer.commit()
    assert (data / "tasks.db-wal").stat().st_size > 0
    subprocess.run(["chown", "-R", f"{RAILGUARD_UID}:{RAILGUARD_UID}", str(data)], check=True)
    yield data, writer
    writer.close()


def good_backups(data: Path) -> list:
    return [record for record in list_backups(data / "backups", "tasks") if record.is_good]


def rows_in(record, scratch: Path) -> int:
    with materialize(record, scratch) as copy:  # verifies the sha256s and runs integrity_check
        with sqlite3.connect(copy.path) as db:
            return db.execute("SELECT count(*) FROM tasks").fetchone()[0]


def test_railguard_backup_in_the_container_leaves_a_verified_backup_on_the_host(railguard_image, data_dir, tmp_path):
    data, _ = data_dir
    result = subprocess.run(["docker", "run", "--rm", "--network", "host", "--volume", f"{data}:/app/data",
                             railguard_image, "backup"], capture_output=True, text=True, env=DOCKER_ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("backup /app/data/backups/tasks-")
    [record] = good_backups(data)
    assert record.data_path.stat().st_uid == RAILGUARD_UID, "the image runs as its non-root user"
    assert record.manifest.journal_mode == "wal"
    (tmp_path / "scratch").mkdir()
    assert rows_in(record, tmp_path / "scratch") == 200, "the rows still in the WAL are in the backup"


def test_the_image_runs_the_daemon_which_turns_healthy_and_stops_cleanly_on_sigterm(railguard_image, data_dir,
                                                                                     tmp_path):
    data, _ = data_dir
    port = free_port()
    config = tmp_path / "config"
    config.mkdir()
    (config / "railguard.toml").write_text(f"""\
[apps.tasks.schedule]
backup = "every 3s"

[daemon]
listen = "127.0.0.1:{port}"
""")
    container_id = docker("run", "--detach", "--network", "host", "--volume", f"{data}:/app/data",
                          "--volume", f"{config}:/etc/railguard:ro",
                          "--env", f"RAILGUARD_HEALTHZ_URL=http://127.0.0.1:{port}/healthz",
                          "--health-interval", "1s", "--health-retries", "2", railguard_image).strip()
    try:
        container = Container(container_id, port)
        health = container.wait_for_health("healthy", output=f"ok 200 http://127.0.0.1:{port}/healthz")
        assert health["Log"][-1]["ExitCode"] == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
            assert "backup:tasks" in json.dumps(json.loads(response.read()))

        # The catch-up run at start, then one on the schedule. (Read from the log, not the backup
        # directory: each run prunes the older backups of the day while we would be listing it.)
        deadline = time.monotonic() + 120
        while container.logs().count("job=backup:tasks event=ok") < 2:
            assert time.monotonic() < deadline, container.logs()
            time.sleep(0.5)

        # SIGTERM, as CapRover and `docker stop` send it; the daemon finishes or aborts the running backup.
        docker("stop", "--time", "120", container_id, timeout=180)
        state = json.loads(docker("inspect", "--format", "{{json .State}}", container_id))
        logs = container.logs()
        assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False), logs
        assert "job=backup:tasks event=ok" in logs
        # Within stop_grace: no SIGKILL. (A job caught by SIGTERM while it starts or exits ends
        # with exit_code=-15, which the daemon also calls "killed"; that one is allowed.)
        assert "did not stop within stop_grace" not in logs and "exit_code=-9" not in logs, logs
        leftovers = [p.name for p in (data / "backups").iterdir() if is_temp_name(p.name)]
        assert leftovers == [], "an interrupted backup removes its temporary files"
        records = list_backups(data / "backups", "tasks")
        assert records and all(record.is_good for record in records)
        (tmp_path / "scratch").mkdir()
        assert rows_in(records[-1], tmp_path / "scratch") == 200
    finally:
        docker("rm", "--force", "--volumes", container_id, check=False)
