"""Heartbeats around the backup job, the metrics textfile it refreshes, and the failure
notification: a real ping receiver and apprise receiver on 127.0.0.1, a real backup."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from local_http import JsonReceiver, PingReceiver, free_port
from prometheus_client.parser import text_string_to_metric_families

from railguard.backup.manifest import Manifest
from railguard.config import Settings
from railguard.notify.heartbeat import Heartbeat
from railguard.metrics import metrics_endpoint
from railguard.secrets import Secret

UUID = "5f0c6a1e-0000-4000-8000-00000000abcd"


def config(tmp_path: Path, database: Path, extra: str = "") -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\ndatabase = "{database}"\n'
                    f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\n'
                    f'[apps.tasks.heartbeat]\nbackup_url_env = "HC_BACKUP_URL"\nretries = 1\n{extra}')
    return path


def test_a_backup_pings_start_then_success_with_the_same_run_id(
        run_cli, tmp_path: Path, tasks_db: Path, pings: PingReceiver) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--config", config(tmp_path, tasks_db), "backup", "--json",
                     env={"HC_BACKUP_URL": pings.url_for(UUID)})
    assert result.exit_code == 0, result.stderr
    assert pings.signals() == ["start", "0"]
    start, end = pings.requests
    assert start.query["rid"] == end.query["rid"]
    assert b"integrity_check ok" in end.body
    report = json.loads(result.stdout)
    assert [p["signal"] for p in report["steps"]["heartbeat"]] == ["start", "0"]
    assert UUID not in result.stdout + result.stderr


def test_the_success_ping_names_the_backups_the_prune_removed_as_the_output_does(
        run_cli, tmp_path: Path, tasks_db: Path, pings: PingReceiver) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from retention.helpers import write_backup_files

    old = [write_backup_files(tmp_path / "backups", datetime(2020, 1, day, 3, 30, tzinfo=timezone.utc))
           for day in (1, 2)]
    result = run_cli("--config", config(tmp_path, tasks_db, "[apps.tasks.retention]\nkeep_last = 1\n"),
                     "backup", "--scheduled", env={"HC_BACKUP_URL": pings.url_for(UUID)})
    assert result.exit_code == 0, result.stderr
    [pruned] = [line for line in result.stdout.splitlines() if line.startswith("pruned here")]
    assert pruned.endswith(": " + ", ".join(old))
    assert pruned in pings.requests[-1].body.decode().splitlines()


def test_a_failed_backup_pings_its_exit_code_and_notifies(
        run_cli, tmp_path: Path, pings: PingReceiver, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "data" / "missing.db"
    result = run_cli("--config", config(tmp_path, missing), "backup",
                     env={"HC_BACKUP_URL": pings.url_for(), "RAILGUARD_NOTIFY_URLS": receiver.url})
    assert result.exit_code == 6, result.stderr  # the backup's own error stands
    assert pings.signals() == ["start", "6"]
    assert b"backup failed (exit 6)" in pings.requests[1].body
    assert receiver.titles() == ["tasks backup FAILED"]
    assert str(missing) in receiver.messages[0]["message"]


def test_a_ping_endpoint_that_is_down_never_fails_the_backup(
        run_cli, tmp_path: Path, tasks_db: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}/ping/{UUID}"
    with caplog.at_level(logging.WARNING, logger="railguard"):
        result = run_cli("--config", config(tmp_path, tasks_db), "backup", env={"HC_BACKUP_URL": url})
    assert result.exit_code == 0
    assert "heartbeat start to $HC_BACKUP_URL failed after 2 attempt(s): connection refused" in caplog.text
    assert UUID not in result.stdout + result.stderr + caplog.text
    counted = json.loads((tmp_path / "state" / "heartbeats.json").read_text())["tasks/backup"]
    assert (counted["pings"], counted["failures"]) == (2, 2)


def test_a_ping_is_retried_after_a_server_error(pings: PingReceiver) -> None:
    pings.fail_next = 2
    result = Heartbeat(Secret(pings.url_for()), source="$HC", retries=2, sleep=lambda s: None).start()
    assert (result.ok, result.attempts) == (True, 3)


def test_a_404_is_not_retried(pings: PingReceiver, caplog: pytest.LogCaptureFixture) -> None:
    pings.status = 404
    with caplog.at_level(logging.WARNING, logger="railguard.heartbeat"):
        result = Heartbeat(Secret(pings.url_for()), source="$HC", retries=3, sleep=lambda s: None).fail("log")
    assert (result.ok, result.attempts, result.reason) == (False, 1, "HTTP 404")
    assert "heartbeat fail to $HC failed after 1 attempt(s): HTTP 404" in caplog.text


def test_a_long_log_is_cut_to_the_ping_body_limit_keeping_its_end(pings: PingReceiver) -> None:
    Heartbeat(Secret(pings.url_for()), source="$HC").exit_status(2, "x" * 20_000 + "the end")
    assert len(pings.requests[0].body) == 10_000 and pings.requests[0].body.endswith(b"the end")
    assert pings.signals() == ["2"]


def test_a_backup_refreshes_the_textfile_with_conventional_names(
        run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    cfg = config(tmp_path, tasks_db, f'[metrics]\ntextfile_directory = "{textfiles}"\n')
    assert run_cli("--config", cfg, "backup").exit_code == 0
    prom = textfiles / "railguard.prom"
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644
    assert [p.name for p in textfiles.iterdir()] == ["railguard.prom"]  # no temporary file left behind
    samples = {s.name: s for f in text_string_to_metric_families(prom.read_text()) for s in f.samples}
    [manifest_path] = (tmp_path / "backups").glob("*.manifest.json")
    manifest = Manifest.read(manifest_path)
    from datetime import datetime
    assert samples["railguard_backup_last_success_timestamp_seconds"].value == \
        datetime.fromisoformat(manifest.created_at).timestamp()
    assert samples["railguard_backup_last_size_bytes"].value == manifest.size_stored
    assert samples["railguard_backup_last_verify_success"].value == 1
    assert samples["railguard_backup_last_run_success"].value == 1
    assert samples["railguard_backup_last_success_timestamp_seconds"].labels == {"app": "tasks"}
    for name in samples:
        assert name.startswith("railguard_")


def test_the_metrics_endpoint_serves_parseable_exposition(tmp_path: Path) -> None:
    status, headers, body = metrics_endpoint(Settings(state_dir=tmp_path / "state"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    families = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {"railguard_backup_last_success_timestamp_seconds", "railguard_notifications",
            "railguard_monitor_probe_success"} <= families


def test_a_damaged_ping_state_file_is_counted_afresh_and_never_fails_the_backup(
        run_cli, tmp_path: Path, tasks_db: Path, pings: PingReceiver) -> None:  # type: ignore[no-untyped-def]
    """heartbeats.json is JSON but not the object of objects it should be (cut short and
    rewritten by hand, say): the counts start again instead of the job failing on it."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "heartbeats.json").write_text('[{"failures": 3}]\n')
    result = run_cli("--config", config(tmp_path, tasks_db), "backup", env={"HC_BACKUP_URL": pings.url_for(UUID)})
    assert result.exit_code == 0, result.stderr
    counted = json.loads((state / "heartbeats.json").read_text())
    assert list(counted) == ["tasks/backup"]
    assert (counted["tasks/backup"]["pings"], counted["tasks/backup"]["failures"]) == (2, 0)


def test_the_recorded_pings_read_back_per_heartbeat_and_a_damaged_entry_reads_as_none(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from railguard.notify.heartbeat import PingResult, configured_heartbeats, record_pings

    settings = Settings.model_validate({"state_dir": str(tmp_path / "state"), "apps": {"tasks": {
        "database": str(tmp_path / "tasks.db"),
        "heartbeat": {"backup_url_env": "HC_BACKUP_URL", "drill_url_env": "HC_DRILL_URL"}}}})
    app = settings.apps["tasks"]
    at = datetime(2026, 11, 30, 3, 30, tzinfo=timezone.utc)
    record_pings(settings, "tasks", "backup", [PingResult("start", True, 1), PingResult("0", True, 1)], at)
    # The same second again, one ping failing: the failure is what a page must show.
    record_pings(settings, "tasks", "backup", [PingResult("0", False, 3, "HTTP 503")], at)
    backup, drill = configured_heartbeats(settings, "tasks", app, env={})
    assert (backup.job, backup.source, backup.pings, backup.failures) == ("backup", "$HC_BACKUP_URL", 3, 1)
    assert (backup.last_ping_at, backup.last_result, backup.last_failure_signal, backup.last_failure_reason) == (
        at, "failed", "0", "HTTP 503")
    assert (drill.source, drill.pings, drill.last_ping_at, drill.last_result) == ("$HC_DRILL_URL", 0, None, None)
    (tmp_path / "state" / "heartbeats.json").write_text(json.dumps({"tasks/backup": {
        "pings": "many", "failures": -1, "last_ok": "yesterday", "last_failure": ["not", "an", "object"]}}))
    damaged, _ = configured_heartbeats(settings, "tasks", app, env={})
    assert (damaged.pings, damaged.failures, damaged.last_ping_at, damaged.last_result) == (0, 0, None, None)
