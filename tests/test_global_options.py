"""The global options (--config, --app, --json, --quiet, -v) on every command, before or after
its name, and what each of them does: real databases, real backups, a real HTTP target."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from local_http import SwitchableTarget, free_port
from railguard.cli import output
from railguard.cli.context import Context
from railguard.cli.root import cli
from test_cli import all_commands

GLOBAL_OPTIONS = {"--config", "--app", "--json", "-q", "--quiet", "-v", "--verbose"}
#: probe's words are all its own (a Docker HEALTHCHECK; railguard/cli/probe_cmd.py).
WITHOUT_GLOBAL_OPTIONS = {"probe"}
#: The one timestamp format (railguard.logfmt.timestamp): seconds and a +HH:MM offset.
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
ANY_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d[^\s\"]*")


def every_command() -> Iterator[tuple[list[str], click.Command]]:
    def walk(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])

    for name, command in all_commands().items():
        if name not in WITHOUT_GLOBAL_OPTIONS:
            yield from walk(command, [name])


def test_every_command_declares_the_global_options():
    for path, command in every_command():
        declared = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        assert GLOBAL_OPTIONS <= declared, f"railguard {' '.join(path)} lacks {sorted(GLOBAL_OPTIONS - declared)}"


def test_every_command_parses_the_global_options_after_its_name_and_they_win():
    checked = 0
    modes = output.start_command()  # the callbacks below set the modes: give them back after
    for path, command in every_command():
        with cli.make_context("railguard", [*path], resilient_parsing=True) as root:
            root.obj = Context(config_path="before.toml", app_name="before")
            # Parse as click would: each group down to the command, the globals after its name.
            ctx = root
            for depth, name in enumerate(path):
                sub = ctx.command.get_command(ctx, name)  # type: ignore[attr-defined]
                assert sub is not None
                words = ["--config", "after.toml", "--app", "after", "--json", "-q", "-vv"] \
                    if depth == len(path) - 1 else []
                ctx = sub.make_context(name, words, parent=ctx, resilient_parsing=True)
            obj = ctx.find_object(Context)
            assert (obj.config_path, obj.app_name) == ("after.toml", "after"), path
            assert (output.json_mode(), output.quiet_mode(), output.verbosity()) == (True, True, 2)
            output.end_command(modes)
            modes = output.start_command()
            checked += 1
    output.end_command(modes)
    assert checked >= 30


def write_config(tmp_path: Path, database: Path) -> Path:
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\ndatabase = "{database}"\n'
                      f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\nprune = false\n')
    return config


def test_config_after_the_command_name_means_what_it_means_before(run_cli, tmp_path: Path, tasks_db: Path):
    config = write_config(tmp_path, tasks_db)
    assert run_cli("backup", "--config", config).exit_code == 0
    after = run_cli("backups", "list", "--config", config, "--json")
    before = run_cli("--config", config, "--json", "backups", "list")
    assert after.exit_code == before.exit_code == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert len(json.loads(after.stdout)["backups"]) == 1


def test_app_after_the_command_name_selects_the_app(run_cli, tmp_path: Path):
    config = tmp_path / "two.toml"
    config.write_text('[apps.one]\ndatabase = "/data/one.db"\n[apps.two]\ndatabase = "/data/two.db"\n')
    result = run_cli("backups", "list", "--config", config, "--app", "nope")
    assert result.exit_code != 0
    assert "nope" in result.stderr


def test_quiet_prints_nothing_on_stdout_on_success_and_the_backup_is_made(run_cli, tmp_path: Path, tasks_db: Path):
    config = write_config(tmp_path, tasks_db)
    result = run_cli("backup", "--config", config, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    listed = run_cli("--config", config, "backups", "list", "--json")
    assert len(json.loads(listed.stdout)["backups"]) == 1


def test_quiet_still_prints_errors_on_stderr(run_cli, tmp_path: Path):
    result = run_cli("backups", "list", "-q", "--config", tmp_path / "missing.toml")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("error: configuration file ") and "\nhint: " in result.stderr


def test_quiet_with_json_still_prints_the_document_a_script_asked_for(run_cli, tmp_path: Path, tasks_db: Path):
    config = write_config(tmp_path, tasks_db)
    result = run_cli("-q", "backups", "list", "--config", config, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["ok"] is True


def monitor_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "monitor.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\nurl = "{url}"\n'
                      '[monitor]\ninterval = "0.2s"\ntimeout = "2s"\n')
    return config


@pytest.fixture
def target() -> Iterator[SwitchableTarget]:
    server = SwitchableTarget()
    yield server
    server.stop()


def test_verbose_after_the_command_name_logs_each_round_with_the_one_timestamp_format(
        run_cli, tmp_path: Path, target: SwitchableTarget):
    config = monitor_config(tmp_path, target.base)
    quiet = run_cli("monitor", "--once", "--config", config)
    assert quiet.exit_code == 0, quiet.stderr
    assert "event=round" not in quiet.stderr
    loud = run_cli("monitor", "--once", "--config", config, "-v")
    assert loud.exit_code == 0, loud.stderr
    lines = [line for line in loud.stderr.splitlines() if line.startswith("time=")]
    assert any("event=round" in line for line in lines), loud.stderr
    for line in lines:
        assert TIMESTAMP.fullmatch(line.split()[0].removeprefix("time=")), line


def test_monitor_once_json_is_one_document_per_round(run_cli, tmp_path: Path, target: SwitchableTarget):
    config = monitor_config(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    result = run_cli("monitor", "--once", "--json", "--config", config)
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    document = json.loads(line)
    assert document["ok"] is False and document["failed"] == 1
    assert document["targets"]["tasks"]["ok"] is False
    assert TIMESTAMP.fullmatch(document["started_at"])


def test_init_print_json_lists_the_files_and_writes_nothing(run_cli, tmp_path: Path):
    result = run_cli("init", "--runtime", "bun", "--print", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    names = {entry["name"] for entry in document["files"]}
    assert {"Dockerfile", "railguard.toml"} <= names
    assert not (tmp_path / "Dockerfile").exists()


def test_init_json_names_the_written_files_and_the_next_steps(run_cli, tmp_path: Path):
    (tmp_path / "app").mkdir()
    result = run_cli("init", str(tmp_path / "app"), "--runtime", "node", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert str(tmp_path / "app" / "Dockerfile") in document["written"]
    assert all(Path(path).exists() for path in document["written"])
    assert document["next"] == [f"railguard doctor {tmp_path / 'app'}"]


def test_backup_prune_and_status_output_and_logs_use_the_one_timestamp_format(
        run_cli, tmp_path: Path, tasks_db: Path):
    config = write_config(tmp_path, tasks_db)
    outputs = [run_cli("backup", "--config", config, "--json"), run_cli("prune", "--config", config, "--json"),
               run_cli("status", "--config", config, "--json"), run_cli("backup", "--config", config, "-v")]
    logs = [path.read_text() for path in (tmp_path / "backups").rglob("*.log")]
    assert logs, "backup.log was not written"
    seen = 0
    for text in [*(o.stdout + o.stderr for o in outputs), *logs]:
        for stamp in ANY_TIMESTAMP.findall(text):
            seen += 1
            # JSON documents may carry sub-second precision; the format is the same.
            assert TIMESTAMP.fullmatch(re.sub(r"\.\d+(?=[+-])", "", stamp)), stamp
    assert seen >= 3
