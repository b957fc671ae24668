"""Notifications: routing, idempotency, failures that are logged and counted, never raised."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest
from local_http import JsonReceiver, free_port

from railguard.config import NotificationSettings
from railguard.notify import Notifier, SentLog, split_urls
from railguard.notify.channel import AppriseChannel, ChannelError
from railguard.secrets import Secret

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc)
TOKEN = "123456789:AAF-very-secret-bot-token"


def notifier(tmp_path: Path, env: dict[str, str], **settings: object) -> Notifier:
    return Notifier(NotificationSettings(**settings), tmp_path / "state", env=env)


def test_a_message_reaches_the_json_receiver_once(tmp_path: Path, receiver: JsonReceiver) -> None:
    delivery = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": receiver.url}).notify(
        "backup_failed", "tasks backup FAILED", "disk full", now=NOW)
    assert delivery.status == "sent"
    assert [(m["title"], m["message"], m["type"]) for m in receiver.messages] == [
        ("tasks backup FAILED", "disk full", "failure")]


def test_an_event_left_out_of_events_is_not_sent(tmp_path: Path, receiver: JsonReceiver) -> None:
    delivery = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": receiver.url}).notify(
        "drill_passed", "drill passed", "ok", now=NOW)
    assert delivery.status == "unrouted"
    assert receiver.messages == []


def test_a_route_sends_its_event_to_other_urls(tmp_path: Path, receiver: JsonReceiver) -> None:
    owner = JsonReceiver()
    try:
        sender = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": receiver.url, "DEPLOY_URLS": owner.url},
                          routes={"deploy_ok": "DEPLOY_URLS"})
        sender.notify("deploy_ok", "deploy OK abc", "fine", now=NOW)
        sender.notify("monitor_down", "tasks is DOWN", "503", now=NOW)
        assert owner.titles() == ["deploy OK abc"]
        assert receiver.titles() == ["tasks is DOWN"]
    finally:
        owner.stop()


def test_one_variable_can_hold_several_urls(tmp_path: Path, receiver: JsonReceiver) -> None:
    second = JsonReceiver()
    try:
        urls = f"{receiver.url}, {second.url}\n"
        notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": urls}).notify("test", "hello", "body", now=NOW)
        assert receiver.titles() == ["hello"] and second.titles() == ["hello"]
    finally:
        second.stop()


def test_urls_can_come_from_a_file(tmp_path: Path, receiver: JsonReceiver) -> None:
    secret_file = tmp_path / "urls"
    secret_file.write_text(receiver.url + "\n")
    delivery = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS_FILE": str(secret_file)}).notify("test", "t", "b", now=NOW)
    assert delivery.status == "sent" and receiver.titles() == ["t"]


def test_a_keyed_message_is_sent_once_even_from_two_notifiers(tmp_path: Path, receiver: JsonReceiver) -> None:
    env = {"RAILGUARD_NOTIFY_URLS": receiver.url}
    first = notifier(tmp_path, env).notify("deploy_ok", "deploy OK abc123", "x", key="deploy_ok:tasks:abc123", now=NOW)
    second = notifier(tmp_path, env).notify("deploy_ok", "deploy OK abc123", "x", key="deploy_ok:tasks:abc123",
                                            now=NOW)
    assert (first.status, second.status) == ("sent", "duplicate")
    assert receiver.titles() == ["deploy OK abc123"]


def test_a_keyed_message_that_failed_is_sent_next_time(tmp_path: Path, receiver: JsonReceiver) -> None:
    down = f"json://127.0.0.1:{free_port()}/notify"
    failed = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": down}).notify("deploy_ok", "deploy OK", "x", key="k", now=NOW)
    sent = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": receiver.url}).notify("deploy_ok", "deploy OK", "x", key="k",
                                                                              now=NOW)
    assert (failed.status, sent.status) == ("failed", "sent")
    assert receiver.titles() == ["deploy OK"]


def test_remembered_keys_are_bounded_oldest_first(tmp_path: Path, receiver: JsonReceiver) -> None:
    sender = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": receiver.url}, remember=10)
    for number in range(15):
        sender.notify("deploy_ok", f"deploy OK {number}", "x", key=f"commit-{number}", now=NOW)
    keys = SentLog(tmp_path / "state").read().keys
    assert list(keys) == [f"commit-{n}" for n in range(5, 15)]


def test_an_endpoint_that_is_down_is_logged_and_counted_not_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"json://{TOKEN.replace(':', '')}@127.0.0.1:{free_port()}/hook/{TOKEN.split(':')[1]}"
    sender = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": url})
    with caplog.at_level(logging.WARNING, logger="railguard.notify"):
        delivery = sender.notify("backup_failed", "backup FAILED", "x", now=NOW)
    assert delivery.status == "failed" and not delivery.ok
    assert "notification backup_failed via $RAILGUARD_NOTIFY_URLS failed" in caplog.text
    state = SentLog(tmp_path / "state").read()
    assert state.counts == {"failed": 1}
    assert state.last_failure is not None and state.last_failure["event"] == "backup_failed"
    everything = caplog.text + delivery.reason + (tmp_path / "state" / "notifications.json").read_text()
    assert TOKEN.split(":")[1] not in everything and TOKEN.replace(":", "") not in everything


def test_a_bad_url_fails_the_notification_without_showing_it(tmp_path: Path) -> None:
    sender = notifier(tmp_path, {"RAILGUARD_NOTIFY_URLS": f"json://127.0.0.1/x nosuchscheme://{TOKEN}"})
    delivery = sender.notify("backup_failed", "t", "b", now=NOW)
    assert delivery.status == "failed"
    assert "URL #2 in $RAILGUARD_NOTIFY_URLS (scheme nosuchscheme://)" in delivery.reason
    assert TOKEN not in delivery.reason


def test_a_missing_state_directory_does_not_stop_a_message(tmp_path: Path, receiver: JsonReceiver) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    sender = Notifier(NotificationSettings(), blocker / "state", env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    assert sender.notify("test", "still sent", "b", key="k", now=NOW).status == "sent"
    assert receiver.titles() == ["still sent"]


def test_channel_refuses_an_empty_variable() -> None:
    with pytest.raises(ChannelError, match="holds no notification URL"):
        AppriseChannel(Secret("  \n"), source="$RAILGUARD_NOTIFY_URLS")


@pytest.mark.parametrize("text, urls", [
    ("json://a/b", ["json://a/b"]),
    ("json://a/b, json://c/d\ntgram://1:x/2", ["json://a/b", "json://c/d", "tgram://1:x/2"]),
    ("mailtos://u:p@example.com?to=a@example.com,b@example.com json://c/d",
     ["mailtos://u:p@example.com?to=a@example.com,b@example.com", "json://c/d"]),
])
def test_split_urls_keeps_commas_inside_a_query(text: str, urls: list[str]) -> None:
    assert split_urls(text) == urls


def test_notify_test_command_sends_and_says_where(run_cli, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("notify", "test", env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "sent test via $RAILGUARD_NOTIFY_URLS (1 URL(s): json)"
    assert receiver.titles() == ["railguard: test"]


def test_notify_test_json_never_shows_the_urls(run_cli, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    url = f"json://user:{TOKEN.split(':')[1]}@127.0.0.1:{receiver.port}/notify"
    result = run_cli("notify", "test", "--json", env={"RAILGUARD_NOTIFY_URLS": url})
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["schemes"] == ["json"]
    assert TOKEN.split(":")[1] not in result.stdout + result.stderr


def test_notify_test_without_urls_is_a_usage_error_with_a_hint(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("notify", "test", env={"RAILGUARD_NOTIFY_URLS": ""})
    assert result.exit_code == 3
    assert "error: no notification URLs: $RAILGUARD_NOTIFY_URLS is not set" in result.stderr
    assert "hint: Export RAILGUARD_NOTIFY_URLS=" in result.stderr


def test_notify_test_to_an_endpoint_that_is_down_exits_2_without_the_url(run_cli) -> None:  # type: ignore[no-untyped-def]
    url = f"json://user:{TOKEN.split(':')[1]}@127.0.0.1:{free_port()}/notify"
    result = run_cli("notify", "test", env={"RAILGUARD_NOTIFY_URLS": url})
    assert result.exit_code == 2
    assert "error: the notification via $RAILGUARD_NOTIFY_URLS failed" in result.stderr
    assert TOKEN.split(":")[1] not in result.stdout + result.stderr


def test_notify_test_with_an_unparseable_url_exits_3(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("notify", "test", env={"RAILGUARD_NOTIFY_URLS": f"nosuchscheme://{TOKEN}"})
    assert result.exit_code == 3
    assert "URL #1 in $RAILGUARD_NOTIFY_URLS (scheme nosuchscheme://) is not one apprise understands" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_two_runs_at_once_still_send_a_keyed_message_once(tmp_path: Path, receiver: JsonReceiver) -> None:
    import threading

    env = {"RAILGUARD_NOTIFY_URLS": receiver.url}
    results: list[str] = []

    def send() -> None:
        results.append(notifier(tmp_path, env).notify("deploy_ok", "deploy OK", "x", key="deploy_ok:tasks:c1",
                                                      now=NOW).status)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate", "duplicate", "duplicate", "sent"]
    assert receiver.titles() == ["deploy OK"]
