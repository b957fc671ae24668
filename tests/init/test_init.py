"""railguard init --runtime: the deploy files the plan asks for, strict, never over existing files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from railguard.config import load_settings
from railguard.doctor import diagnose
from railguard.doctor.dockerfile import parse
from railguard.doctor.shell import tokens

ROOT = Path(__file__).resolve().parents[2]
FILES = ["Dockerfile", "startup.sh", ".dockerignore", "captain-definition", "railguard.toml"]


@pytest.mark.parametrize("runtime", ["bun", "node", "python"])
def test_init_writes_files_that_doctor_passes(run_cli, tmp_path, runtime):
    result = run_cli("init", "--runtime", runtime, tmp_path)
    assert result.exit_code == 0, result.stderr
    expected = FILES + (["probe.py"] if runtime == "python" else [])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    assert [f.rule for f in diagnose(tmp_path).findings] == []
    assert os.access(tmp_path / "startup.sh", os.X_OK)
    assert json.loads((tmp_path / "captain-definition").read_text()) == {"schemaVersion": 2,
                                                                         "dockerfilePath": "./Dockerfile"}


@pytest.mark.parametrize("runtime", ["bun", "node", "python"])
def test_the_starter_railguard_toml_loads_with_the_plans_defaults(tmp_path, runtime, run_cli):
    run_cli("init", "--runtime", runtime, tmp_path)
    settings = load_settings(tmp_path / "railguard.toml")
    name, app = settings.app()
    assert name == "tasks"
    assert str(app.database) == "/app/data/tasks.db"
    assert str(app.backup.directory) == "/app/data/backups"
    assert (app.retention.keep_daily, app.retention.keep_weekly) == (7, 4)


def test_startup_sh_execs_the_app_without_sleeping(run_cli, tmp_path):
    run_cli("init", "--runtime", "bun", tmp_path, "--command", "bun run src/main.ts")
    script = (tmp_path / "startup.sh").read_text()
    assert script.splitlines()[-1] == "exec bun run src/main.ts"
    assert "sleep" not in tokens(script)


def test_init_never_overwrites_without_force(run_cli, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM mine\n")
    result = run_cli("init", "--runtime", "node", tmp_path)
    assert result.exit_code == 2
    assert result.stderr == (f"error: Dockerfile already exists in {tmp_path}; nothing was written\n"
                             "hint: Compare with --print, then re-run with --force to overwrite\n")
    assert [p.name for p in tmp_path.iterdir()] == ["Dockerfile"]
    assert (tmp_path / "Dockerfile").read_text() == "FROM mine\n"
    assert run_cli("init", "--runtime", "node", tmp_path, "--force").exit_code == 0
    assert (tmp_path / "Dockerfile").read_text().startswith("# Written by `railguard init --runtime node`")


def test_print_writes_nothing(run_cli, tmp_path):
    result = run_cli("init", "--runtime", "python", tmp_path, "--print")
    assert result.exit_code == 0
    assert list(tmp_path.iterdir()) == []
    headers = re.findall(r"^==> (.+) <==$", result.stdout, re.MULTILINE)
    assert headers == FILES + ["probe.py"]


def test_a_missing_directory_is_not_found(run_cli, tmp_path):
    result = run_cli("init", "--runtime", "bun", tmp_path / "nope")
    assert result.exit_code == 6
    assert result.stderr.startswith(f"error: directory {tmp_path / 'nope'} does not exist\n")


def test_init_without_a_generator_is_a_usage_error(run_cli, tmp_path):
    result = run_cli("init", tmp_path)
    assert result.exit_code == 3
    assert "say what to write: --runtime bun|node|python" in result.stderr


def test_the_python_image_gets_an_exact_copy_of_the_probe(run_cli, tmp_path):
    run_cli("init", "--runtime", "python", tmp_path)
    assert (tmp_path / "probe.py").read_text() == (ROOT / "src" / "railguard" / "probe.py").read_text()


# The JavaScript one-liner is the same for bun and node; node runs it here (bun is not installed).

class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        status = {"/health": 200}.get(self.server.mode, 0) or int(self.server.mode.strip("/"))
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.mode = "/health"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _healthcheck_script(tmp_path: Path, run_cli) -> list[str]:
    run_cli("init", "--runtime", "node", tmp_path)
    check = parse((tmp_path / "Dockerfile").read_text()).healthcheck()
    return tokens(check.shell)


@pytest.mark.parametrize(("mode", "exit_code"), [("/health", 0), ("503", 1), ("204", 1), ("302", 1), ("404", 1)])
def test_the_js_healthcheck_exits_0_only_for_a_200(run_cli, tmp_path, health_server, mode, exit_code):
    node = subprocess.run(["which", "node"], capture_output=True, text=True).stdout.strip()
    if not node:
        pytest.skip("node is not installed: the bun/node one-liner cannot run here")
    argv = _healthcheck_script(tmp_path, run_cli)
    assert argv[:2] == ["node", "-e"]
    health_server.mode = mode
    result = subprocess.run(argv, env={**os.environ, "PORT": str(health_server.server_address[1])},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == exit_code, result.stdout + result.stderr


def test_the_js_healthcheck_exits_1_when_nothing_listens(run_cli, tmp_path):
    node = subprocess.run(["which", "node"], capture_output=True, text=True).stdout.strip()
    if not node:
        pytest.skip("node is not installed: the bun/node one-liner cannot run here")
    argv = _healthcheck_script(tmp_path, run_cli)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run(argv, env={**os.environ, "PORT": str(port)}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "fetch failed" in result.stdout


def test_every_command_of_this_issue_has_help(run_cli):
    for command in ("init", "doctor"):
        result = run_cli(command, "--help")
        assert result.exit_code == 0 and f" {command} [OPTIONS] [DIR]" in result.stdout.splitlines()[0]
    listing = run_cli("--help").stdout
    assert all(f"  {command} " in listing for command in ("init", "doctor", "probe"))
