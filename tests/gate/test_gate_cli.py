"""`railguard gate` refuses a setup it cannot run safely, with the exit code and a hint."""

from __future__ import annotations

from pathlib import Path

from railguard.errors import ExitCode


def _config(tmp_path: Path, gate_app: str = "", extra: str = "") -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n\n[apps.tasks]\n'
                    f'database = "{tmp_path / "no-database-yet.db"}"\n\n'
                    '[apps.tasks.deploy]\ntest_command = ["sh", "run-tests.sh"]\n\n'
                    f'{extra}[gate.apps.tasks]\nrepository = "dev/tasks"\nclone_url = "file:///srv/tasks.git"\n'
                    f"{gate_app}")
    return path


def test_serve_refuses_to_start_without_the_webhook_secret(run_cli, tmp_path: Path) -> None:
    result = run_cli("--config", _config(tmp_path), "gate", "serve", env={"RAILGUARD_GATE_SECRET": ""})
    assert result.exit_code == ExitCode.USAGE
    assert "error: the secret $RAILGUARD_GATE_SECRET is not set" in result.stderr
    assert "hint: Export RAILGUARD_GATE_SECRET" in result.stderr


def test_serve_refuses_to_hand_a_secret_to_the_test_suite(run_cli, tmp_path: Path) -> None:
    config = _config(tmp_path, gate_app='pass_env = ["HOME", "CAPROVER_APP_TOKEN"]\n')
    result = run_cli("--config", config, "gate", "serve", env={"RAILGUARD_GATE_SECRET": "s3cret-value"})
    assert result.exit_code == ExitCode.USAGE
    assert "gate.apps.tasks.pass_env would hand the secret CAPROVER_APP_TOKEN to the test suite" in result.stderr


def test_serve_refuses_to_start_without_caprover(run_cli, tmp_path: Path) -> None:
    result = run_cli("--config", _config(tmp_path), "gate", "serve", env={"RAILGUARD_GATE_SECRET": "s3cret-value"})
    assert result.exit_code == ExitCode.USAGE
    assert "apps.tasks.deploy.caprover_url is not set" in result.stderr


def test_serve_names_a_gate_app_that_has_no_app_section(run_cli, tmp_path: Path) -> None:
    config = _config(tmp_path, extra="")
    config.write_text(config.read_text().replace("[gate.apps.tasks]", "[gate.apps.billing]"))
    result = run_cli("--config", config, "gate", "serve", env={"RAILGUARD_GATE_SECRET": "s3cret-value"})
    assert result.exit_code == ExitCode.USAGE
    assert "[gate.apps.billing] names no app under [apps]" in result.stderr


def test_a_misspelt_gate_key_is_a_config_error(run_cli, tmp_path: Path) -> None:
    config = _config(tmp_path, gate_app='deploy_mod = "upload"\n')
    result = run_cli("--config", config, "gate", "list")
    assert result.exit_code == ExitCode.USAGE
    assert "gate.apps.tasks.deploy_mod: unknown key" in result.stderr


def test_runs_lists_the_queue_without_a_running_gate(run_cli, tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from railguard.gate.queue import RunQueue

    queue = RunQueue(tmp_path / "state" / "gate" / "queue.sqlite3")
    run = queue.enqueue(app="tasks", commit="c" * 40, ref="refs/heads/main", source="webhook",
                        now=datetime(2026, 11, 27, tzinfo=timezone.utc)).run_id
    assert run is not None
    queue.finish(run, "failed", "`sh run-tests.sh` failed with exit code 1", now=datetime.now(timezone.utc))

    result = run_cli("--config", _config(tmp_path), "gate", "list")

    assert result.exit_code == 0
    assert result.stdout.split() == f"#{run} tasks {'c' * 12} failed `sh run-tests.sh` failed with exit code 1".split()


def test_hook_install_remote_needs_the_shared_secret(run_cli, tmp_path: Path) -> None:
    import subprocess

    bare = tmp_path / "tasks.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    result = run_cli("--config", _config(tmp_path), "hook", "install", bare, "--remote", "http://127.0.0.1:8787",
                     env={"RAILGUARD_GATE_CHECK_SECRET": ""})
    assert result.exit_code == ExitCode.USAGE
    assert "shared secret file" in result.stderr and "RAILGUARD_GATE_CHECK_SECRET" in result.stderr
    assert not (bare / "hooks" / "pre-receive").exists()


def test_every_gate_command_has_help(run_cli) -> None:
    expected = {("gate",): "Option C: Forgejo webhooks in", ("gate", "serve"): "Serve POST /hooks/forgejo",
                ("gate", "list"): "List the gate's latest runs"}
    for command, text in expected.items():
        result = run_cli(*command, "--help")
        assert result.exit_code == 0 and text in " ".join(result.stdout.split())
