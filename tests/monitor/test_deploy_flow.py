"""A real deploy keeps the monitor silent while the app restarts, and a DOWN right after it names it.

``railguard deploy`` in-process with the steps every CLI deploy gets (deploy_steps: the monitor's
window opened last before the upload, closed after the smoke check), real git, the fake CapRover,
the example app as a real process on 127.0.0.1 (the old one stopped and the new one started once
CapRover has the upload, as CapRover's restart does), a real apprise receiver, and the real
monitor runner over the same state_dir. Its rounds are run at fixed points of the deploy, so
nothing depends on timing; the only clock is the wall clock the CLI and the monitor share.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from deploy.gitrepos import APP_TOKEN, PASSWORD, Repo
from example_app import ExampleApp, start_example_app
from fakes.caprover import FakeCapRover
from local_http import JsonReceiver, free_port

from railguard.config import NotificationSettings, load_settings
from railguard.monitor import Monitor, MonitorStore, targets_from_settings
from railguard.notify import Notifier
from railguard.rehearsal.monitor_steps import close_window_step, open_window_step
from railguard.rehearsal.steps import deploy_steps

UPLOAD = "/api/v2/user/apps/appData/tasks"


@pytest.fixture
def apps() -> Iterator[list[ExampleApp]]:
    started: list[ExampleApp] = []
    yield started
    for app in started:
        app.stop()


def write_config(tmp_path: Path, captain: FakeCapRover, repo: Repo, port: int) -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[apps.tasks]\ndatabase = "{tmp_path / "data" / "tasks.db"}"\nurl = "http://127.0.0.1:{port}"\n'
        f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\n'
        f'[apps.tasks.deploy]\ncaprover_url = "{captain.url}"\nrepository = "{repo.path}"\npoll_interval = "0s"\n'
        f'[apps.tasks.smoke]\nwait = "60s"\npoll_interval = "0.2s"\n'
        f'[monitor]\ntimeout = "2s"\nfailure_threshold = 2\nsuccess_threshold = 1\n')
    return path


def test_every_cli_deploy_opens_the_window_last_and_closes_it_after_the_smoke_check(tmp_path: Path) -> None:
    settings = load_settings(None)
    steps = deploy_steps(settings, "tasks", settings.apps["tasks"])
    assert steps.pre[-1] is open_window_step
    names = [getattr(step, "__name__", "") for step in steps.post]
    assert names.index("close_window_step") > names.index("smoke")
    assert steps.post[-1] is close_window_step


def test_a_deploy_keeps_the_monitor_silent_while_the_app_restarts_and_a_down_after_it_names_it(
        run_cli, tmp_path: Path, captain: FakeCapRover, repo: Repo, receiver: JsonReceiver,
        apps: list[ExampleApp]) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data").mkdir()
    port = free_port()
    config = write_config(tmp_path, captain, repo, port)
    settings = load_settings(config)
    apps.append(start_example_app(tmp_path / "data" / "tasks.db", port, "0123456789abcdef0123"))
    store = MonitorStore(settings.state_dir / "monitor.sqlite3")
    notifier = Notifier(NotificationSettings(), settings.state_dir, env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    monitor = Monitor(targets_from_settings(settings), settings.monitor, store=store, notifier=notifier)
    try:
        monitor.run_round()
        assert monitor.states["tasks"].status == "up"
        during: list[str] = []

        def restart_once_uploaded() -> None:  # what CapRover does after the build, with the monitor looking
            deadline = time.monotonic() + 120
            while not captain.calls_to(UPLOAD, "POST") and time.monotonic() < deadline:
                time.sleep(0.05)
            apps[0].stop()
            for _ in range(3):
                monitor.run_round()
            during.append(monitor.states["tasks"].status)
            apps.append(start_example_app(tmp_path / "data" / "tasks.db", port, repo.sha()))

        restarter = threading.Thread(target=restart_once_uploaded)
        restarter.start()
        result = run_cli("--config", config, "deploy", "--json",
                         env={"CAPROVER_APP_TOKEN": APP_TOKEN, "RAILGUARD_NOTIFY_URLS": receiver.url})
        restarter.join()
        assert result.exit_code == 0, result.stdout + result.stderr
        document = json.loads(result.stdout)
        opened = next(step for step in document["pre_steps"] if step["name"] == "monitor")
        assert opened["status"] == "passed" and opened["summary"].startswith("no DOWN alert for tasks until")
        # The window is closed by the last step, after the smoke check (deploy_steps).
        names = [step["name"] for step in document["steps"]]
        assert names[-1] == "monitor" and names.index("smoke") < names.index("monitor")
        assert all(step["ok"] for step in document["steps"])
        deploy_id = opened["details"]["deploy_id"]
        assert during == ["down"]  # the monitor saw the restart as an outage ...
        assert [m for m in receiver.titles() if "DOWN" in m] == []  # ... and said nothing about it

        monitor.run_round()  # the new process serves: UP again, no RECOVERED owed
        assert monitor.states["tasks"].status == "up"
        apps[-1].stop()  # and then the new version falls over
        for _ in range(2):
            monitor.run_round()
    finally:
        monitor.close()
    downs = [m for m in receiver.messages if "DOWN" in m["title"]]
    assert [m["title"] for m in downs] == [f"tasks is DOWN after deploy {deploy_id}"]
    commit12 = repo.sha()[:12]
    assert re.search(rf"This is (less than a minute|\d+ minutes?) after deploy {deploy_id} of {commit12} \(deploy\)\. "
                     r"To roll back: railguard rollback --app tasks$", downs[0]["message"]), downs[0]["message"]
    restart, after = store.incidents("tasks", monitor.clock() - timedelta(hours=1))
    assert restart.deploy_note == f"during deploy {deploy_id} of {commit12} (deploy)" and restart.ended_at
    assert after.deploy_id == deploy_id and after.deploy_note is not None
    assert after.deploy_note.endswith(f"after deploy {deploy_id} of {commit12} (deploy)")
    store.close()


def context_for(settings, deploy_id: int = 7):  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from railguard.deploy.steps import PreDeployContext

    return PreDeployContext(settings=settings, app_name="tasks", app=settings.apps["tasks"], kind="release",
                            deploy_id=deploy_id, commit="f" * 40, replaces=None, tar=None,
                            clock=lambda: datetime(2026, 12, 2, 10, tzinfo=timezone.utc), notifier=None)  # type: ignore[arg-type]


def test_the_window_step_skips_an_app_the_monitor_does_not_watch(tmp_path: Path) -> None:
    from railguard.config import Settings

    unwatched = Settings.model_validate({"state_dir": str(tmp_path / "state"), "apps": {"tasks": {}}})
    result = open_window_step(context_for(unwatched))
    assert (result.status.value, result.summary) == ("skipped", "skipped: the monitor watches nothing "
                                                                "(the monitor has no targets)")
    elsewhere = Settings.model_validate({"state_dir": str(tmp_path / "state"), "apps": {"tasks": {}},
                                         "monitor": {"targets": [{"name": "site", "url": "http://127.0.0.1:9/"}]}})
    assert open_window_step(context_for(elsewhere)).summary == "skipped: the monitor watches no target of tasks"
    assert not (tmp_path / "state" / "monitor.sqlite3").exists()


def test_a_monitor_file_that_stays_busy_never_blocks_the_deploy(tmp_path: Path) -> None:
    import sqlite3

    from railguard.config import Settings

    settings = Settings.model_validate({"state_dir": str(tmp_path / "state"),
                                        "apps": {"tasks": {"url": "http://127.0.0.1:9"}}})
    MonitorStore(settings.state_dir / "monitor.sqlite3").close()
    holder = sqlite3.connect(settings.state_dir / "monitor.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = open_window_step(context_for(settings))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.ok and result.status.value == "skipped"
    assert result.summary.endswith("stayed busy for 2s; the monitor may alert during the restart")


def test_a_named_target_follows_its_apps_deploys(tmp_path: Path) -> None:
    from railguard.config import Settings
    from railguard.deploy.steps import PostDeployContext

    settings = Settings.model_validate({
        "state_dir": str(tmp_path / "state"), "apps": {"tasks": {}},
        "monitor": {"targets": [{"name": "public-site", "url": "http://127.0.0.1:9/", "app": "tasks"}]}})
    context = context_for(settings)
    opened = open_window_step(context)
    assert opened.status.value == "passed" and opened.details["until"] == context.clock() + timedelta(minutes=30)
    record = type("Record", (), {"id": 7})()
    closed = close_window_step(PostDeployContext(settings=settings, app_name="tasks", app=settings.apps["tasks"],
                                                 record=record, clock=context.clock, notifier=None,  # type: ignore[arg-type]
                                                 facts=context.facts))
    assert closed.summary == "tasks alerts again; a DOWN in the next 30m names deploy 7 of ffffffffffff (release)"
    nothing = close_window_step(PostDeployContext(settings=settings, app_name="tasks", app=settings.apps["tasks"],
                                                  record=record, clock=context.clock, notifier=None))  # type: ignore[arg-type]
    assert nothing.summary == "skipped: no deploy window was opened for this deploy"


def test_a_deploy_whose_build_fails_does_not_mute_the_monitor(
        run_cli, tmp_path: Path, captain: FakeCapRover, repo: Repo, receiver: JsonReceiver,
        apps: list[ExampleApp]) -> None:  # type: ignore[no-untyped-def]
    from railguard.rehearsal.monitor_steps import deploy_outcome

    (tmp_path / "data").mkdir()
    port = free_port()
    config = write_config(tmp_path, captain, repo, port)
    config.write_text(config.read_text().replace('poll_interval = "0s"', 'poll_interval = "0s"\nmode = "login"', 1))
    settings = load_settings(config)
    apps.append(start_example_app(tmp_path / "data" / "tasks.db", port, "0123456789abcdef0123"))
    store = MonitorStore(settings.state_dir / "monitor.sqlite3")
    notifier = Notifier(NotificationSettings(), settings.state_dir, env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    monitor = Monitor(targets_from_settings(settings), settings.monitor, store=store, notifier=notifier,
                      deploy_outcome=deploy_outcome(settings))
    try:
        monitor.run_round()
        captain.fail_next_builds = 1
        result = run_cli("--config", config, "deploy", env={"CAPROVER_PASSWORD": PASSWORD,
                                                           "RAILGUARD_NOTIFY_URLS": receiver.url})
        assert result.exit_code == 2, result.stdout + result.stderr
        assert store.deploy_windows(monitor.clock() - timedelta(hours=1)) != []  # opened, and left open
        apps[0].stop()  # later, the app (still the old version) falls over
        for _ in range(2):
            monitor.run_round()
    finally:
        monitor.close()
    assert [m["title"] for m in receiver.messages if "DOWN" in m["title"]] == ["tasks is DOWN"]
    assert store.deploy_windows(monitor.clock() - timedelta(hours=1)) == []
    store.close()
