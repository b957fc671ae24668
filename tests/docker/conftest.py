"""A real Docker engine for the tests that are about Docker.

The session starts ``dockerd`` itself when none answers (Debian's docker.io, with
``--bridge=none --iptables=false``: containers run with ``--network host`` only) and stops it
at the end. Nothing can be pulled here, so the base image is built from Debian packages with
``debootstrap --variant=minbase --include=python3,sqlite3 bookworm`` and ``docker import``ed,
once: it stays in the engine's store for the next run. When an engine cannot start, or the
base image cannot be built, every test here is skipped with the reason (shown by ``-ra``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "examples" / "tasks-app"
BASE_IMAGE = os.environ.get("RAILGUARD_TEST_BASE_IMAGE", "railguard-base:bookworm")
APP_IMAGE = "railguard-tasks-app:test"
MIRROR = os.environ.get("RAILGUARD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SOCKET = "unix:///var/run/docker.sock"
# The legacy builder: the docker.io CLI has no buildx plugin, and the build needs nothing newer.
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


def docker(*args: str, check: bool = True, timeout: float = 120, input: bytes | None = None) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, env=DOCKER_ENV, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode(errors="replace")


def _engine_answers() -> tuple[bool, str]:
    try:
        result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                                text=True, timeout=20, env=DOCKER_ENV)
    except subprocess.TimeoutExpired:
        return False, "docker version timed out"
    if result.returncode == 0:
        return True, result.stdout.strip()
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return False, lines[-1].strip() if lines else f"docker version exited {result.returncode}"


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """The server version of a running engine; starts (and later stops) dockerd if needed.

    Several test sessions may share the engine: each holds a shared lock on a lock file while
    it uses it, and the session that started dockerd waits for the exclusive lock before it
    stops it, so it never pulls the engine from under another session.
    """
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI: install Debian's docker.io (.ci/run does)")
    usage = open(Path(tempfile.gettempdir()) / "railguard-test-dockerd.lock", "a+")  # noqa: SIM115
    process = None
    try:
        with open(Path(tempfile.gettempdir()) / "railguard-test-dockerd.start.lock", "a+") as start_lock:
            fcntl.flock(start_lock, fcntl.LOCK_EX)
            answers, detail = _engine_answers()
            if not answers:
                process, detail = _start_dockerd(detail)
            fcntl.flock(usage, fcntl.LOCK_SH)
        yield detail
    finally:
        if process is not None:
            fcntl.flock(usage, fcntl.LOCK_EX)
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        usage.close()


def _start_dockerd(detail: str) -> tuple[subprocess.Popen, str]:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip(f"no Docker engine answers ({detail}) and dockerd is not installed: apt-get install docker.io")
    if os.geteuid() != 0:
        pytest.skip(f"no Docker engine answers ({detail}) and starting dockerd needs root")
    log_path = Path(tempfile.gettempdir()) / "railguard-test-dockerd.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false",
                                    "--host", SOCKET, "--pidfile", "/run/railguard-test-dockerd.pid"],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        answers, detail = _engine_answers()
        if answers:
            return process, detail
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
            pytest.skip(f"a Docker engine cannot start here: dockerd exited {process.returncode}: {_tail(log_path)}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def base_image(docker_engine: str) -> str:
    """A Debian bookworm image with python3 and sqlite3, built offline-capable, cached in the engine."""
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, env=DOCKER_ENV).returncode == 0:
        return BASE_IMAGE
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.skip(f"the base image {BASE_IMAGE} is missing and debootstrap is not installed (apt-get install "
                    "debootstrap)")
    with tempfile.TemporaryDirectory(prefix="railguard-rootfs-", dir="/var/tmp") as rootfs:
        result = subprocess.run([debootstrap, "--variant=minbase", "--include=python3,sqlite3", "bookworm", rootfs,
                                 MIRROR], capture_output=True, text=True, timeout=1500)
        if result.returncode != 0:
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            pytest.skip(f"cannot build the base image with debootstrap from {MIRROR}: {tail}")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-c",
                                   "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                   "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True, env=DOCKER_ENV, timeout=600)
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0:
            raise AssertionError(f"docker import failed: {imported.stderr.decode(errors='replace')}")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def app_image(base_image: str) -> str:
    """The example app's image, built from examples/tasks-app/Dockerfile on the local base."""
    docker("build", "--quiet", "--build-arg", f"BASE_IMAGE={base_image}", "--tag", APP_IMAGE, str(APP_DIR),
           timeout=600)
    return APP_IMAGE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Container:
    id: str
    port: int

    def health(self) -> dict:
        return json.loads(docker("inspect", "--format", "{{json .State.Health}}", self.id))

    def wait_for_health(self, wanted: str, *, output: str = "", checks_at_least: int = 1,
                        within: float = 120) -> dict:
        """Poll until the health status is ``wanted`` and at least ``checks_at_least`` checks,
        the last one included, printed a line starting with ``output``. (Checks made before the
        app listened say "connection refused": a slow start must not fail the test.)"""
        deadline = time.monotonic() + within
        while True:
            health = self.health()
            matching = [entry for entry in health.get("Log") or [] if entry["Output"].startswith(output)]
            if health["Status"] == wanted and len(matching) >= checks_at_least and \
                    health["Log"][-1]["Output"].startswith(output):
                return health
            if time.monotonic() > deadline:
                raise AssertionError(f"container did not become {wanted}: {json.dumps(health)[-1500:]}\n"
                                     f"{docker('logs', self.id, check=False)}")
            time.sleep(0.3)

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.id], capture_output=True, text=True, env=DOCKER_ENV)
        return result.stdout + result.stderr


@pytest.fixture
def run_container(app_image: str) -> Iterator[Callable[..., Container]]:
    """``run_container(*docker_run_options, env={...}, image=None)``: the app image (or another)
    on the host network, listening on 127.0.0.1 at a free port, checked every second; removed
    after the test."""
    started: list[str] = []

    def run(*options: str, env: dict[str, str] | None = None, image: str | None = None) -> Container:
        port = free_port()
        environment = {"HOST": "127.0.0.1", "PORT": str(port), **(env or {})}
        flags = [item for key, value in environment.items() for item in ("--env", f"{key}={value}")]
        container_id = docker("run", "--detach", "--network", "host", "--health-interval", "1s",
                              "--health-retries", "2", "--health-timeout", "10s", *flags, *options,
                              image or app_image).strip()
        started.append(container_id)
        return Container(container_id, port)

    yield run
    for container_id in started:
        docker("rm", "--force", "--volumes", container_id, check=False)
