"""pip install of the built wheel into a fresh virtual environment: the `railguard` it installs
works away from the source tree (files read at run time are package data)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from railguard import __version__

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*argv: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # No PYTHONPATH and a working directory outside the tree: nothing may come from src/.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", ROOT, "--wheel-dir", base, cwd=base)
    assert built.returncode == 0, built.stderr
    [wheel] = base.glob("railguard-*.whl")
    assert wheel.name == f"railguard-{__version__}-py3-none-any.whl"
    return wheel


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and both extras installed; returns its bin/ directory."""
    base = tmp_path_factory.mktemp("wheel")
    assert run(sys.executable, "-m", "venv", base / "venv", cwd=base).returncode == 0
    installed = run(base / "venv" / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"{wheel}[s3,encrypt]", cwd=base)
    assert installed.returncode == 0, installed.stderr
    return base / "venv" / "bin"


@pytest.fixture
def health_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def test_the_wheel_holds_the_files_railguard_reads_at_run_time(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    # `railguard init --runtime python` copies probe.py; the drill runs watchdog.py as a script.
    assert {"railguard/probe.py", "railguard/drill/watchdog.py"} <= set(names)
    assert not [name for name in names if name.startswith(("tests/", "examples/")) or "__pycache__" in name]


def test_the_installed_railguard_answers_version_and_help(installed, tmp_path):
    version = run(installed / "railguard", "--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"railguard, version {__version__}\n")
    helped = run(installed / "railguard", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    for command in ["backup", "restore", "daemon", "init", "probe"]:
        assert f"  {command} " in helped.stdout


def test_the_installed_package_is_the_venvs_not_the_source_tree(installed, tmp_path):
    where = run(installed / "python", "-c", "import railguard, boto3, pyrage; print(railguard.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(installed.parent / "lib")), where.stdout
    # Reads probe.py from the installed package.
    printed = run(installed / "railguard", "init", "--runtime", "python", "--print", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "==> probe.py <==\n" in printed.stdout


def test_the_installed_probe_runs_as_a_module(installed, tmp_path, health_server):
    probe = run(installed / "python", "-m", "railguard.probe", health_server, cwd=tmp_path)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert probe.stdout.startswith(f"ok 200 {health_server} ")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/health"
    refused = run(installed / "python", "-m", "railguard.probe", closed, cwd=tmp_path)
    assert (refused.returncode, refused.stdout) == (1, f"unhealthy: connection refused: {closed}\n")


def test_pipx_installs_the_wheel_with_its_extras_as_a_command_of_its_own(wheel, tmp_path, health_server):
    pytest.importorskip("pipx", reason="pipx is missing: pip install -e '.[test]'")
    home = tmp_path / "pipx"
    env = {**os.environ, "PIPX_HOME": str(home / "home"), "PIPX_BIN_DIR": str(home / "bin"),
           "PIPX_MAN_DIR": str(home / "man")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-m", "pipx", "install", "--quiet", f"{wheel}[s3,encrypt]"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    version = run(home / "bin" / "railguard", "--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"railguard, version {__version__}\n")
    python = home / "home" / "venvs" / "railguard" / "bin" / "python"
    assert run(python, "-c", "import boto3, pyrage", cwd=tmp_path).returncode == 0, "the extras are installed"
    probe = run(python, "-m", "railguard.probe", health_server, cwd=tmp_path)
    assert probe.returncode == 0, probe.stdout
