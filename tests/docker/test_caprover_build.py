"""The example app built the way CapRover builds an uploaded tar, then checked with
`railguard smoke --commit`: the commit reaches the running app only through the build arg.

What CapRover does with ``POST appData/<app>`` + ``sourceFile`` (caprover/caprover):
src/user/ImageMaker.ts ``ensureImage`` extracts the tar, reads its ``captain-definition``
(``dockerfilePath``), adds ``CAPROVER_GIT_COMMIT_SHA=<gitHash>`` to the app's environment
variables, and src/docker/DockerApi.ts ``buildImageFromDockerFile`` passes all of them as
``buildargs`` to the image build. The service it then runs gets the app's environment variables,
never the commit (ServiceManager.ensureServiceInitedAndUpdated). So here: ``docker build
--build-arg`` for each, and ``docker run`` without ``CAPROVER_GIT_COMMIT_SHA``.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from .conftest import APP_DIR, docker

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def example_app_commit(tmp_path: Path, *, dockerfile: str | None = None) -> tuple[str, bytes]:
    """The example app as a commit of its own repository: (sha, ``git archive`` of it), which is
    what railguard uploads as ``sourceFile``."""
    work = tmp_path / "tasks-app"
    work.mkdir()
    for name in ("app.py", "probe.py", "startup.sh", "Dockerfile", "captain-definition"):
        (work / name).write_bytes((APP_DIR / name).read_bytes())
    (work / "startup.sh").chmod(0o755)
    if dockerfile is not None:
        (work / "Dockerfile").write_text(dockerfile)
    git(work, "init", "--quiet", "--initial-branch=main")
    git(work, "-c", "user.name=Dev", "-c", "user.email=dev@example.test", "-c", "commit.gpgsign=false",
        "commit", "--quiet", "--allow-empty", "-m", "tasks app")
    git(work, "add", "-A")
    git(work, "-c", "user.name=Dev", "-c", "user.email=dev@example.test", "-c", "commit.gpgsign=false",
        "commit", "--quiet", "-m", "the app")
    sha = git(work, "rev-parse", "HEAD")
    tar = subprocess.run(["git", "archive", "--format=tar", sha], cwd=work, check=True, capture_output=True).stdout
    return sha, tar


def build_like_caprover(tar: bytes, git_hash: str, *, tag: str, app_env_vars: dict[str, str], into: Path) -> str:
    """ImageMaker.ensureImage for an uploaded tar with a captain-definition naming a Dockerfile."""
    source = into / "raw"
    source.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(source, filter="data")
    definition = json.loads((source / "captain-definition").read_text())
    assert definition["schemaVersion"] == 2 and "dockerfilePath" in definition
    build_args = {**app_env_vars}
    build_args.setdefault("CAPROVER_GIT_COMMIT_SHA", git_hash)  # CaptainConstants.gitShaEnvVarKey
    flags = [item for key, value in build_args.items() for item in ("--build-arg", f"{key}={value}")]
    docker("build", "--quiet", "--network", "host", *flags, "--file",
           str(source / definition["dockerfilePath"]), "--tag", tag, str(source), timeout=900)
    return tag


def smoke(run_cli, tmp_path: Path, port: int, sha: str, since: float):
    config = tmp_path / "railguard.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n\n[apps.tasks]\n'
                    f'database = "{tmp_path / "no-database-yet.db"}"\n')
    return run_cli("--config", config, "smoke", "--url", f"http://127.0.0.1:{port}", "--commit", sha,
                   "--since", str(since), "--wait", "60s", "--json", "--no-notify")


def test_the_example_app_built_like_capRover_serves_the_uploaded_commit(run_cli, run_container, base_image,
                                                                       tmp_path):
    sha, tar = example_app_commit(tmp_path)
    # BASE_IMAGE is an app environment variable in CapRover terms: it reaches the build the same way.
    image = build_like_caprover(tar, sha, tag="railguard-caprover-build:test",
                                app_env_vars={"BASE_IMAGE": base_image}, into=tmp_path / "build")
    since = time.time() - 1
    container = run_container(image=image)  # HOST and PORT only: the commit is not passed at run time
    container.wait_for_health("healthy")

    result = smoke(run_cli, tmp_path, container.port, sha, since)

    assert result.exit_code == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["commit"] == {"name": "commit", "ok": True, "detail": f"serving {sha}"}


def test_without_the_arg_the_app_built_like_capRover_cannot_name_its_commit(run_cli, run_container, base_image,
                                                                           tmp_path):
    dockerfile = (APP_DIR / "Dockerfile").read_text()
    without = dockerfile.replace("ARG CAPROVER_GIT_COMMIT_SHA\n", "")
    assert without != dockerfile, "the example Dockerfile must declare ARG CAPROVER_GIT_COMMIT_SHA"
    sha, tar = example_app_commit(tmp_path, dockerfile=without)
    image = build_like_caprover(tar, sha, tag="railguard-caprover-build-no-arg:test",
                                app_env_vars={"BASE_IMAGE": base_image}, into=tmp_path / "build")
    since = time.time() - 1
    container = run_container(image=image)
    container.wait_for_health("healthy")

    result = smoke(run_cli, tmp_path, container.port, sha, since)

    assert result.exit_code == 7, result.stdout
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["commit"]["ok"] is False
    assert checks["commit"]["detail"] == (f"neither /version nor a *_build_info metric names the commit "
                                          f"(expected {sha})")
