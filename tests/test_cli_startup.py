"""A fast start: what `railguard --help` and `railguard status` import, and the table of command
summaries that lets the root help import no command module. No timing here (bench/cli.py
measures it); a test checks what a fresh process has imported, which a loaded machine cannot
change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from railguard.cli.root import COMMAND_MODULES, COMMAND_SUMMARIES, cli
from test_cli import all_commands

#: Third-party packages that a command needs only when it draws, serves or sends something.
HEAVY = {"pydantic", "rich", "prometheus_client", "boto3", "botocore", "apprise", "starlette", "uvicorn", "pyrage"}


def imported_by(tmp_path: Path, *args: str, columns: int = 80) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `railguard ARGS` in a fresh interpreter (help COLUMNS wide); its result and every
    module it imported."""
    listing = tmp_path / "modules.json"
    script = textwrap.dedent(f"""\
        import json, sys
        sys.argv = ["railguard", *{list(args)!r}]
        try:
            from railguard.entrypoint import main
            main()
        finally:
            with open({str(listing)!r}, "w") as out:
                json.dump(sorted(sys.modules), out)
        """)
    env = {**os.environ, "COLUMNS": str(columns)}
    env.pop("RAILGUARD_CONFIG", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    return result, set(json.loads(listing.read_text()))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_every_summary_is_the_real_commands_short_help_at_every_width():
    commands = all_commands()
    assert set(COMMAND_SUMMARIES) == set(COMMAND_MODULES), "each command of COMMAND_MODULES needs its summary"
    for name, command in commands.items():
        stand_in = click.Command(name, help=COMMAND_SUMMARIES[name])
        # The limits the root help can use: click's width (50 to 78 columns) less the name column.
        for limit in range(20, 160):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), (name, limit)
        assert not command.hidden and not command.deprecated, name


def test_root_help_imports_no_command_module_and_no_heavy_package(tmp_path: Path):
    result, modules = imported_by(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout and "backup" in result.stdout
    loaded = sorted(m for m in modules if m.startswith("railguard.cli.") and m.endswith("_cmd"))
    assert loaded == [], f"railguard --help imported {loaded}"
    assert not HEAVY & top_level(modules), sorted(HEAVY & top_level(modules))
    assert "railguard.config" not in modules


def test_root_help_without_the_commands_lists_what_click_lists_with_them(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    all_commands()
    for columns in (50, 64, 80, 120):
        fresh, _ = imported_by(tmp_path, "--help", columns=columns)
        monkeypatch.setenv("COLUMNS", str(columns))  # the width click takes in both processes
        with click.Context(cli, info_name="railguard") as ctx:
            formatter = ctx.make_formatter()
            click.Group.format_commands(cli, ctx, formatter)  # click's own: asks each loaded command
        assert "Commands:" in formatter.getvalue()
        assert formatter.getvalue() in fresh.stdout, columns


def test_status_imports_the_configuration_and_the_logs_owners_not_the_web_or_cloud_stacks(
        tmp_path: Path, tasks_db: Path):
    config = tmp_path / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{tasks_db}"\n\n[apps.tasks.backup]\n'
                      f'directory = "{tmp_path / "backups"}"\n')
    result, modules = imported_by(tmp_path, "--config", str(config), "status", "--json")
    assert result.returncode in (0, 1, 7), result.stderr
    assert json.loads(result.stdout)["rows"]
    assert {"railguard.config", "railguard.status"} <= modules
    heavy = HEAVY - {"pydantic"}  # the configuration is a pydantic model
    assert not heavy & top_level(modules), sorted(heavy & top_level(modules))
    assert not {m for m in modules if m.startswith(("railguard.metrics", "railguard.jobs", "railguard.gate",
                                                    "railguard.smoke.runner", "railguard.drill.runner",
                                                    "railguard.http"))}
    # Each log and store is read without the jobs that write it: no backup engine (snapshot,
    # verification), no HTTP probe (http.client, ssl), no monitor runner or notifications, no retention.
    jobs = {"railguard.backup.engine", "railguard.backup.snapshot", "railguard.backup.verify",
            "railguard.monitor.probe", "railguard.monitor.runner", "railguard.notify", "railguard.retention",
            "railguard.destinations.prune", "railguard.destinations.replicate", "railguard.destinations.remote",
            "http.client", "ssl",
            # an app without a page store: none of the store's modules (its manifests' validator types)
            "railguard.pages.store", "railguard.pages.catalog"}
    assert not jobs & modules, sorted(jobs & modules)


def test_reading_the_catalog_and_its_manifests_imports_no_pydantic(tmp_path: Path):
    """``backups list`` and ``status`` read every manifest: its parser is plain Python, so that
    reading one costs the reading, not pydantic's import and a validator's schema."""
    good = {"name": "tasks-20261127-0330", "file": "tasks-20261127-0330.sqlite3.zst", "source": "/app/data/tasks.db",
            "created_at": "2026-11-27T03:30:00+00:00", "sqlite_version": "3.40.1", "page_size": 4096,
            "page_count": 2, "journal_mode": "wal", "size_raw": 8192, "size_stored": 300, "sha256": "0" * 64,
            "raw_sha256": "1" * 64, "method": "backup-api", "compression": "zstd", "level": None,
            "check": "integrity", "check_result": "ok", "verified": True, "foreign_key_problems": 0}
    script = textwrap.dedent(f"""\
        import json, sys
        from pathlib import Path
        from railguard.backup.catalog import list_backups
        from railguard.backup.manifest import BadManifest, Manifest
        assert Manifest.parse({json.dumps(good)!r}).verified
        try:
            Manifest.parse('{{"name": 1}}')
        except BadManifest as refused:
            assert str(refused).startswith("name: Input should be a valid string"), refused
        assert list_backups(Path({str(tmp_path)!r})) == []
        print(json.dumps(sorted(sys.modules)))
        """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pydantic" not in top_level(set(json.loads(result.stdout)))


def test_the_console_script_collects_no_garbage_while_it_starts_and_all_through_the_command(
        tmp_path: Path, tasks_db: Path):
    """railguard.entrypoint turns the cyclic collector off for the start-up; the command's own
    work (here status's reading) runs with it on, the start-up's objects frozen out of it."""
    config = tmp_path / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{tasks_db}"\n\n[apps.tasks.backup]\n'
                      f'directory = "{tmp_path / "backups"}"\n')
    seen = tmp_path / "seen.json"
    script = textwrap.dedent(f"""\
        import gc, json, sys
        import railguard.config  # the heaviest import, as a command module would start it
        import railguard.status
        sys.argv = ["railguard", "--config", {str(config)!r}, "status", "--json"]
        collect = railguard.status.collect_status
        def watched(*args, **kwargs):
            with open({str(seen)!r}, "w") as out:
                json.dump({{"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}, out)
            return collect(*args, **kwargs)
        import railguard.cli.status_cmd
        railguard.cli.status_cmd.collect_status = watched  # the name the command calls
        from railguard.entrypoint import main
        main()
        """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 1, 7), result.stderr
    assert json.loads(result.stdout)["rows"]
    during = json.loads(seen.read_text())
    assert during["enabled"] is True  # a long command (the daemon) must collect its garbage
    assert during["frozen"] > 10_000  # what the start-up built: modules, classes, schemas


def test_a_command_run_in_process_leaves_the_callers_collector_alone(run_cli, tmp_path: Path, tasks_db: Path):
    import gc

    config = tmp_path / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{tasks_db}"\n')
    frozen = gc.get_freeze_count()
    result = run_cli("--config", config, "status", "--json")
    assert result.exit_code in (0, 1, 7), result.stderr
    assert gc.isenabled() and gc.get_freeze_count() == frozen
