"""What ``railguard drill`` refuses before it starts anything, which backup it picks, and the
signals it sends (notifications and heartbeats to real HTTP servers on 127.0.0.1)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from local_http import JsonReceiver, PingReceiver
from prometheus_client.parser import text_string_to_metric_families

from railguard.config import load_settings
from railguard.drill import run_drill


def test_an_unknown_backup_is_not_found_with_the_nearest_names(run_cli, site, clean_env):
    # Fixed times, not the clock: a typo built from a clock-made name is the real name whenever
    # the clock's last digit is the typo's (a CI run failed at a minute ending in 9). The typo is
    # of an older backup, so the hint's first name is the nearest one, not just the newest.
    first = datetime(2026, 11, 1, 3, 30, tzinfo=timezone.utc)
    for day in range(5):
        site.backup(at=first + timedelta(days=day))
    site.configure()
    result = run_cli("--config", site.config, "drill", "tasks-20261102-0331")
    assert result.exit_code == 6
    assert "no backup named 'tasks-20261102-0331'" in result.stderr
    assert "Did you mean: tasks-20261102-0330, " in result.stderr
    assert site.drill_log() == [], "a typo is not a failed drill"


def test_no_backup_at_all_is_not_found(run_cli, site, clean_env):
    site.configure()
    result = run_cli("--config", site.config, "drill")
    assert result.exit_code == 6
    assert "no verified backup" in result.stderr and "railguard backup" in result.stderr


def test_an_app_without_a_drill_section_is_told_how_to_add_one(run_cli, site, clean_env):
    site.backup()
    site.config.write_text(f'[apps.tasks]\ndatabase = "{site.database}"\n'
                           f'[apps.tasks.backup]\ndirectory = "{site.backups}"\n')
    result = run_cli("--config", site.config, "drill")
    assert result.exit_code == 3
    assert "app tasks has no drill command or image" in result.stderr
    assert "[apps.tasks.drill]" in result.stderr


def test_a_command_that_names_the_production_database_is_refused_before_anything_runs(run_cli, site, clean_env):
    site.backup()
    site.configure(env={"DB_PATH": str(site.database)})
    result = run_cli("--config", site.config, "drill")
    assert result.exit_code == 3
    assert f"drill env DB_PATH names the production database ({site.database})" in result.stderr
    assert "{db}" in result.stderr
    assert site.drill_log() == []


def test_a_scratch_directory_inside_the_production_directory_is_refused(run_cli, site, clean_env):
    site.backup()
    site.configure(scratch_dir=str(site.database.parent / "tmp"))
    result = run_cli("--config", site.config, "drill")
    assert result.exit_code == 3
    assert "inside the production data directory" in result.stderr
    assert sorted(p.name for p in site.database.parent.iterdir()) == ["tasks.db"]


def test_identity_without_dest_is_a_usage_error(run_cli, site, clean_env, tmp_path):
    site.configure()
    result = run_cli("--config", site.config, "drill", "--identity", tmp_path / "key.txt")
    assert result.exit_code == 3
    assert "--identity only applies with --dest" in result.stderr


def test_a_bad_start_timeout_flag_is_reported_against_the_flag(run_cli, site, clean_env):
    site.configure()
    result = run_cli("--config", site.config, "drill", "--start-timeout", "soon")
    assert result.exit_code == 3
    assert "--start-timeout" in result.stderr and "duration" in result.stderr


def test_random_drills_only_good_backups_and_can_pick_each_of_them(site, clean_env):
    names = {site.backup(minutes_later=0).name.split(".")[0], site.backup(minutes_later=5).name.split(".")[0]}
    broken = site.backup(minutes_later=10)
    Path(str(broken).replace(".sqlite3.zst", ".manifest.json")).unlink()  # incomplete: never drilled
    settings = load_settings(site.configure())
    _, app = settings.app()
    picked = set()
    for seed in range(8):
        from railguard.drill.runner import _choose

        picked.add(_choose(app, "random", None, random.Random(seed)).name)
    assert picked == names


def test_a_random_drill_passes_through_the_cli(run_cli, site, clean_env):
    site.backup()
    site.configure(backup="random")
    result = run_cli("--config", site.config, "drill", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["result"] == "passed"


def test_railguard_drill_refreshes_the_metrics_textfile_with_the_passing_drill(run_cli, site, clean_env):
    """The drill does not import the metrics (they read drill.log); `railguard drill` hands it
    the refresh, so the textfile still says when the last drill passed."""
    site.backup()
    config = site.configure()
    textfiles = site.root / "textfiles"
    textfiles.mkdir()
    config.write_text(f'[metrics]\ntextfile_directory = "{textfiles}"\n' + config.read_text())
    result = run_cli("--config", config, "drill", "--json")
    assert result.exit_code == 0, result.stderr
    started = datetime.fromisoformat(json.loads(result.stdout)["started_at"])
    families = {family.name: family for family in
                text_string_to_metric_families((textfiles / "railguard.prom").read_text())}
    [sample] = families["railguard_drill_last_success_timestamp_seconds"].samples
    assert sample.labels == {"app": "tasks"} and sample.value == int(started.timestamp())


def test_a_failed_drill_notifies_and_pings_its_heartbeat_with_the_exit_code(site, clean_env):
    receiver, pings = JsonReceiver(), PingReceiver()
    try:
        site.backup()
        config = site.configure(command=["python3", "-c", "import sys; sys.exit(2)"])
        config.write_text(config.read_text() + '\n[apps.tasks.heartbeat]\ndrill_url_env = "DRILL_PING"\n')
        env = {"RAILGUARD_NOTIFY_URLS": receiver.url, "DRILL_PING": pings.url_for(), "PATH": "/usr/bin:/bin"}
        settings = load_settings(config)
        settings.state_dir = site.root / "state"
        name, app = settings.app()
        report = run_drill(settings, name, app, now=datetime.now(timezone.utc), env=env)
        assert report.result == "failed" and int(report.exit_code) == 7
        assert receiver.titles() == ["tasks drill FAILED"]
        assert "exited with code 2" in receiver.messages[0]["message"]
        assert pings.signals() == ["start", "7"]
    finally:
        receiver.stop()
        pings.stop()


def test_a_passing_drill_pings_success_and_notifies_only_when_drill_passed_is_listed(site, clean_env):
    receiver, pings = JsonReceiver(), PingReceiver()
    try:
        site.backup()
        config = site.configure()
        config.write_text(config.read_text() + '\n[apps.tasks.heartbeat]\ndrill_url_env = "DRILL_PING"\n')
        env = {"RAILGUARD_NOTIFY_URLS": receiver.url, "DRILL_PING": pings.url_for(), "PATH": "/usr/bin:/bin"}
        settings = load_settings(config)
        settings.state_dir = site.root / "state"
        name, app = settings.app()
        report = run_drill(settings, name, app, now=datetime.now(timezone.utc), env=env)
        assert report.passed
        assert pings.signals() == ["start", "0"]
        assert receiver.titles() == [], "drill_passed is quiet by default"
        settings.notifications.events = ["drill_passed"]
        assert run_drill(settings, name, app, now=datetime.now(timezone.utc), env=env).passed
        assert receiver.titles() == ["tasks drill passed"]
    finally:
        receiver.stop()
        pings.stop()


def test_a_notification_channel_that_is_down_does_not_change_the_result(site, clean_env):
    site.backup()
    settings = load_settings(site.configure())
    settings.state_dir = site.root / "state"
    settings.notifications.events = ["drill_passed"]
    name, app = settings.app()
    from local_http import free_port

    env = {"RAILGUARD_NOTIFY_URLS": f"json://127.0.0.1:{free_port()}/down", "PATH": "/usr/bin:/bin"}
    report = run_drill(settings, name, app, now=datetime.now(timezone.utc), env=env)
    assert report.passed and int(report.exit_code) == 0
    assert report.signals["notifications"][0]["status"] == "failed"


@pytest.mark.parametrize("code", ["0", "4", "6", "7"])
def test_the_help_lists_the_exit_codes(run_cli, code):
    result = run_cli("drill", "--help")
    assert result.exit_code == 0
    assert f"{code} when" in " ".join(result.stdout.split())


def test_the_docs_describe_every_drill_setting_and_the_command():
    from railguard.config import DrillAssertion, DrillSettings

    repo = Path(__file__).resolve().parents[2]
    docs = (repo / "docs" / "drill.md").read_text()
    for key in [*DrillSettings.model_fields, *DrillAssertion.model_fields]:
        assert f"`{key}`" in docs, f"docs/drill.md does not describe {key}"
    assert "drill.md" in (repo / "README.md").read_text()
    assert "[apps.NAME.drill]" in (repo / "docs" / "configuration.md").read_text()


def test_the_configuration_examples_in_the_drill_docs_are_valid(tmp_path):
    import re

    docs = (Path(__file__).resolve().parents[2] / "docs" / "drill.md").read_text()
    examples = re.findall(r"```toml\n(.*?)```", docs, flags=re.S)
    assert len(examples) >= 2
    for number, example in enumerate(examples):
        config = tmp_path / f"example-{number}.toml"
        config.write_text(example)
        _, app = load_settings(config).app()
        assert app.drill.command or app.drill.image
