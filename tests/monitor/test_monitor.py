"""The monitor against a real target on 127.0.0.1 and a real apprise json:// receiver.

Rounds are driven one by one (``run_round``), so nothing depends on timing; a few tests run
the real loop with short intervals and assert only what happened, never how fast.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from local_http import JsonReceiver, SwitchableTarget, free_port

from railguard.config import MaintenanceWindow, MonitorSettings, NotificationSettings, Settings
from railguard.errors import ConfigError
from railguard.monitor import Monitor, MonitorStore, Target, targets_from_settings
from railguard.monitor.probe import probe
from railguard.notify import Notifier


def make_monitor(tmp_path: Path, target: SwitchableTarget, urls: str, **settings: object) -> Monitor:
    monitor_settings = MonitorSettings(timeout="2s", **settings)
    store = MonitorStore(tmp_path / "state" / "monitor.sqlite3")
    notifier = Notifier(NotificationSettings(), tmp_path / "state", env={"RAILGUARD_NOTIFY_URLS": urls})
    return Monitor([Target("tasks", target.health_url, timedelta(seconds=2))], monitor_settings, store=store,
                   notifier=notifier)


def rounds(monitor: Monitor, count: int) -> None:
    for _ in range(count):
        monitor.run_round()


def test_one_outage_sends_exactly_one_down_and_one_recovered(
        tmp_path: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    monitor = make_monitor(tmp_path, target, receiver.url)
    rounds(monitor, 2)
    target.up = False
    rounds(monitor, 6)
    target.up = True
    rounds(monitor, 4)
    monitor.close()
    titles = receiver.titles()
    assert len(titles) == 2
    assert titles[0] == "tasks is DOWN"
    assert titles[1].startswith("tasks RECOVERED after ")
    assert "HTTP 503 (expected 200)" in receiver.messages[0]["message"]
    assert "is back UP after" in receiver.messages[1]["message"]


def test_a_notification_endpoint_that_is_down_is_logged_and_the_monitor_goes_on(
        tmp_path: Path, target: SwitchableTarget, caplog: pytest.LogCaptureFixture) -> None:
    monitor = make_monitor(tmp_path, target, f"json://127.0.0.1:{free_port()}/notify")
    target.up = False
    with caplog.at_level(logging.WARNING, logger="railguard"):
        rounds(monitor, 5)
    target.up = True
    rounds(monitor, 2)
    monitor.close()
    assert "event=notify_failed target=tasks alert=down" in caplog.text
    assert monitor.states["tasks"].status == "up"
    store = MonitorStore(tmp_path / "state" / "monitor.sqlite3")
    assert store.counts()[0] == 7  # every round was checked and recorded


def test_an_unannounced_down_is_sent_once_the_endpoint_is_back(
        tmp_path: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    down_url = f"json://127.0.0.1:{free_port()}/notify"
    monitor = make_monitor(tmp_path, target, down_url)
    target.up = False
    rounds(monitor, 4)
    monitor.notifier = Notifier(NotificationSettings(), tmp_path / "state", env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    rounds(monitor, 3)
    monitor.close()
    assert receiver.titles() == ["tasks is DOWN"]


def test_a_restart_during_an_outage_sends_no_second_down(
        tmp_path: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    first = make_monitor(tmp_path, target, receiver.url)
    target.up = False
    rounds(first, 4)
    first.close()
    first.store.close()
    second = make_monitor(tmp_path, target, receiver.url)
    rounds(second, 4)
    target.up = True
    rounds(second, 2)
    second.close()
    titles = receiver.titles()
    assert titles[0] == "tasks is DOWN" and titles[1].startswith("tasks RECOVERED after ")
    assert len(titles) == 2


def test_a_maintenance_window_silences_the_outage(
        tmp_path: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    always = MaintenanceWindow(cron="* * * * *", duration="2m")
    monitor = make_monitor(tmp_path, target, receiver.url, maintenance=[always])
    target.up = False
    rounds(monitor, 5)
    target.up = True
    rounds(monitor, 2)
    monitor.close()
    assert receiver.messages == []
    assert monitor.states["tasks"].status == "up"


@pytest.mark.parametrize("configure, reason", [
    (lambda t: setattr(t, "up", False), "HTTP 503 (expected 200)"),
    (lambda t: setattr(t, "body", b"degraded"), "body lacks 'ok'"),
    (lambda t: setattr(t, "delay", 0.3), "slow: "),
])
def test_probe_conditions_name_the_reason(target: SwitchableTarget, configure, reason: str) -> None:  # type: ignore[no-untyped-def]
    configure(target)
    check = probe(Target("t", target.health_url, timedelta(seconds=2), body_contains="ok",
                         max_response_time=timedelta(seconds=0.1)), clock=lambda: datetime.now(timezone.utc))
    assert not check.ok
    assert check.reason.startswith(reason)


def test_probe_reports_refused_connections_and_timeouts(target: SwitchableTarget) -> None:
    clock = lambda: datetime.now(timezone.utc)  # noqa: E731
    refused = probe(Target("t", f"http://127.0.0.1:{free_port()}/health"), clock=clock)
    target.delay = 1.0
    slow = probe(Target("t", target.health_url, timedelta(seconds=0.2)), clock=clock)
    assert refused.reason == "connection refused"
    assert slow.reason == "timed out after 0.2s"


def test_probe_does_not_follow_redirects(target: SwitchableTarget) -> None:
    target.respond = lambda request: (302, "text/plain", b"")  # type: ignore[method-assign]
    check = probe(Target("t", target.health_url), clock=lambda: datetime.now(timezone.utc))
    assert check.reason == "HTTP 302 (expected 200)"


def test_targets_default_to_each_apps_health_url() -> None:
    settings = Settings.model_validate({"apps": {"a": {"url": "http://127.0.0.1:1/"}, "b": {"url": "http://127.0.0.1:2"},
                                                 "c": {}}})
    assert [(t.name, t.url) for t in targets_from_settings(settings)] == [
        ("a", "http://127.0.0.1:1/health"), ("b", "http://127.0.0.1:2/health")]


def test_explicit_targets_take_their_own_conditions() -> None:
    settings = Settings.model_validate({"monitor": {"body_contains": "ok", "targets": [
        {"name": "api", "url": "http://127.0.0.1:1/health", "max_response_time": "300ms"}]}})
    [target] = targets_from_settings(settings)
    assert (target.body_contains, target.max_response_time) == ("ok", timedelta(milliseconds=300))


def test_no_targets_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="the monitor has no targets") as caught:
        targets_from_settings(Settings())
    assert "[[monitor.targets]]" in (caught.value.hint or "")


def write_config(tmp_path: Path, target: SwitchableTarget, extra: str = "") -> Path:
    config = tmp_path / "railguard.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\nurl = "{target.base}"\n'
                      f'[monitor]\ninterval = "0.2s"\ntimeout = "2s"\n{extra}')
    return config


def test_the_monitor_command_runs_rounds_then_status_shows_uptime(
        run_cli, tmp_path: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, target)
    env = {"RAILGUARD_NOTIFY_URLS": receiver.url}
    target.up = False
    result = run_cli("--config", config, "monitor", "--rounds", "4", "-v", env=env)
    assert result.exit_code == 0, result.stderr
    assert "event=round targets=1 failed=1" in result.stderr
    assert "event=down target=tasks" in result.stderr
    status = run_cli("--config", config, "monitor", "list", "--json")
    assert status.exit_code == 7
    [row] = json.loads(status.stdout)["targets"]
    assert (row["name"], row["status"], row["uptime"]["24h"]) == ("tasks", "down", 0.0)
    assert row["last_failure_reason"] == "HTTP 503 (expected 200)"
    target.up = True
    run_cli("--config", config, "monitor", "--rounds", "2", env=env)
    table = run_cli("--config", config, "monitor", "list")
    assert table.exit_code == 0
    assert "UP" in table.stdout and "33.33%" in table.stdout
    assert receiver.titles()[0] == "tasks is DOWN" and len(receiver.titles()) == 2


def test_monitor_once_exits_1_when_a_check_fails(run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, target)
    assert run_cli("--config", config, "monitor", "--once").exit_code == 0
    target.up = False
    assert run_cli("--config", config, "monitor", "--once").exit_code == 1


def test_monitor_status_before_any_run_says_so(run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--config", write_config(tmp_path, target), "monitor", "list")
    assert result.exit_code == 0
    assert "the monitor has not run" in result.stdout


def test_the_monitor_writes_probe_metrics_to_its_textfile(run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    config = write_config(tmp_path, target, f'[metrics]\ntextfile_directory = "{textfiles}"\n')
    assert run_cli("--config", config, "monitor", "--once").exit_code == 0
    samples = {s.name: s for f in text_string_to_metric_families((textfiles / "railguard_monitor.prom").read_text())
               for s in f.samples}
    assert samples["railguard_monitor_probe_success"].value == 1
    assert samples["railguard_monitor_probe_success"].labels == {"target": "tasks"}
    assert samples["railguard_monitor_target_up"].value == 1
    assert samples["railguard_monitor_probe_duration_seconds"].value > 0


def test_the_monitor_never_shows_a_notification_token(run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    token = "bot-token-that-must-stay-secret"
    config = write_config(tmp_path, target)
    target.up = False
    result = run_cli("--config", config, "monitor", "--rounds", "3", "-v",
                     env={"RAILGUARD_NOTIFY_URLS": f"json://user:{token}@127.0.0.1:{free_port()}/{token}"})
    assert result.exit_code == 0
    assert "event=notify_failed target=tasks alert=down" in result.stderr
    assert token not in result.stdout + result.stderr
    assert token not in (tmp_path / "state" / "notifications.json").read_text()


def test_monitor_refuses_a_notification_url_apprise_cannot_parse(
        run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--config", write_config(tmp_path, target), "monitor", "--once",
                     env={"RAILGUARD_NOTIFY_URLS": "nosuchscheme://secret-value"})
    assert result.exit_code == 3
    assert "URL #1 in $RAILGUARD_NOTIFY_URLS (scheme nosuchscheme://)" in result.stderr
    assert "secret-value" not in result.stderr


def test_metrics_listen_serves_the_monitor_state(run_cli, tmp_path: Path, target: SwitchableTarget) -> None:  # type: ignore[no-untyped-def]
    import threading
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    port = free_port()
    config = write_config(tmp_path, target)
    scraped: list[str] = []

    def scrape_while_running() -> None:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    text = response.read().decode()
                if "railguard_monitor_probe_success{" in text:
                    scraped.append(text)
                    return
            except OSError:
                pass
            threading.Event().wait(0.05)

    scraper = threading.Thread(target=scrape_while_running)
    scraper.start()
    result = run_cli("--config", config, "monitor", "--rounds", "15", "--metrics-listen", f"127.0.0.1:{port}")
    scraper.join()
    assert result.exit_code == 0, result.stderr
    assert scraped, "nothing was served at /metrics while the monitor ran"
    samples = {s.name: s for f in text_string_to_metric_families(scraped[0]) for s in f.samples}
    assert samples["railguard_monitor_probe_success"].labels == {"target": "tasks"}


def test_sigterm_stops_the_monitor_cleanly(tmp_path: Path, target: SwitchableTarget) -> None:
    import os
    import signal
    import subprocess
    import sys

    config = write_config(tmp_path, target)
    process = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config), "monitor", "-v"],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "RAILGUARD_NOTIFY_URLS": ""})
    assert process.stderr is not None
    for line in process.stderr:
        if "event=round" in line:
            break
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    assert process.wait(timeout=20) == 0
    assert "event=stop reason=signal" in rest


def test_the_monitor_textfile_is_best_effort_and_written_only_where_configured(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from datetime import datetime, timezone

    from railguard.config import Settings
    from railguard.metrics.textfile import MONITOR_TEXTFILE_NAME, refresh_monitor_textfile
    from railguard.monitor import TargetState

    states = [("tasks", TargetState(status="up", last_ok=True, last_response_time=0.02,
                                    last_check_at=datetime(2026, 3, 1, tzinfo=timezone.utc)))]
    refresh_monitor_textfile(Settings(state_dir=tmp_path / "state"), states)  # no directory configured: nothing
    assert list(tmp_path.iterdir()) == []
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    refresh_monitor_textfile(Settings(metrics={"textfile_directory": str(textfiles)}), states)
    assert "railguard_monitor_target_up{target=\"tasks\"} 1.0" in (textfiles / MONITOR_TEXTFILE_NAME).read_text()
    missing = tmp_path / "no-such-directory"
    refresh_monitor_textfile(Settings(metrics={"textfile_directory": str(missing)}), states)
    assert [r.getMessage() for r in caplog.records if r.name == "railguard.monitor"] == [
        f"cannot write the metrics textfile in {missing}: No such file or directory"]
