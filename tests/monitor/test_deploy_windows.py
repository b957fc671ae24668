"""The monitor knows about deploys: a deploy window holds the DOWN alerts of its app, a DOWN
just after a deploy names it and the rollback command, and a pause holds a target's alerts.

The real monitor against a real target on 127.0.0.1 (switched down and up) and a real apprise
``json://`` receiver, rounds driven one by one with an injected clock: the windows' times are
the test's, never the wall clock's. The windows and pauses are written as a deploy or
``railguard monitor pause`` writes them, through the state_dir functions, into the same file.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from local_http import JsonReceiver, SwitchableTarget

from railguard.config import MonitorSettings, NotificationSettings
from railguard.errors import Busy, ExitCode
from railguard.monitor import (
    DeployWindow, Monitor, MonitorStore, Pause, Target, close_deploy_window, open_deploy_window, pause_target,
    resume_target,
)
from railguard.monitor.control import active_pause, after_deploy, open_window, recent_deploy
from railguard.monitor.store import _control_store
from railguard.notify import Notifier

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
COMMIT = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


class Clock:
    """The monitor's clock: moved by the test, one minute per round."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta = timedelta(minutes=1)) -> None:
        self.now += delta


def make_monitor(state: Path, target: SwitchableTarget, receiver: JsonReceiver, clock: Clock,
                 **settings: object) -> Monitor:
    store = MonitorStore(state / "monitor.sqlite3")
    notifier = Notifier(NotificationSettings(), state, env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    return Monitor([Target("tasks", target.health_url, timedelta(seconds=2), app="tasks")],
                   MonitorSettings(timeout="2s", **settings), store=store, notifier=notifier, clock=clock)


def rounds(monitor: Monitor, clock: Clock, count: int) -> None:
    for _ in range(count):
        monitor.run_round()
        clock.advance()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


# --- the rules, pure ---------------------------------------------------------------------------

def window(**changes: object) -> DeployWindow:
    fields: dict[str, object] = dict(app="tasks", deploy_id=42, commit=COMMIT, kind="release", opened_at=T0,
                                     until=T0 + timedelta(minutes=30), closed_at=None)
    fields.update(changes)
    return DeployWindow(**fields)  # type: ignore[arg-type]


def test_a_window_is_open_from_its_opening_to_its_close_and_never_past_until() -> None:
    closed = window(closed_at=T0 + timedelta(minutes=5))
    assert not closed.is_open(T0 - timedelta(seconds=1))
    assert closed.is_open(T0) and closed.is_open(T0 + timedelta(minutes=4, seconds=59))
    assert not closed.is_open(T0 + timedelta(minutes=5))
    crashed = window()  # never closed: a deploy that died between its steps
    assert crashed.is_open(T0 + timedelta(minutes=29))
    assert not crashed.is_open(T0 + timedelta(minutes=30))
    assert crashed.ends_at == T0 + timedelta(minutes=30)
    assert window(closed_at=T0 + timedelta(hours=2)).ends_at == T0 + timedelta(minutes=30)


def test_open_window_and_recent_deploy_look_only_at_the_targets_app() -> None:
    windows = [window(closed_at=T0 + timedelta(minutes=5)), window(app="billing", deploy_id=7)]
    assert open_window(windows, "tasks", T0 + timedelta(minutes=1)) == windows[0]
    assert open_window(windows, "tasks", T0 + timedelta(minutes=6)) is None
    assert open_window(windows, None, T0 + timedelta(minutes=1)) is None
    grace = timedelta(minutes=30)
    assert recent_deploy(windows, "tasks", T0 + timedelta(minutes=1), grace) is None  # still open: not "after"
    assert recent_deploy(windows, "tasks", T0 + timedelta(minutes=35), grace) == windows[0]
    assert recent_deploy(windows, "tasks", T0 + timedelta(minutes=35, seconds=1), grace) is None
    assert recent_deploy(windows, "billing", T0 + timedelta(minutes=31), grace) == windows[1]


def test_a_down_after_a_deploy_says_how_long_after_which_deploy_of_which_commit() -> None:
    closed = window(closed_at=T0)
    assert after_deploy(closed, T0 + timedelta(seconds=59)) == \
        "less than a minute after deploy 42 of 1a2b3c4d5e6f (release)"
    assert after_deploy(closed, T0 + timedelta(minutes=1)) == "1 minute after deploy 42 of 1a2b3c4d5e6f (release)"
    assert after_deploy(closed, T0 + timedelta(minutes=12, seconds=30)) == \
        "12 minutes after deploy 42 of 1a2b3c4d5e6f (release)"
    assert window(commit=None).describe() == "deploy 42 of an unknown commit (release)"


def test_a_pause_holds_its_target_or_its_app_until_it_ends() -> None:
    pauses = [Pause("tasks", T0, T0 + timedelta(hours=1), "disk swap"), Pause("billing-api", T0)]
    assert active_pause(pauses, ("tasks-health", "tasks"), T0) == pauses[0]
    assert active_pause(pauses, ("tasks-health", "tasks"), T0 + timedelta(hours=1)) is None
    assert active_pause(pauses, ("billing-api", None), T0 + timedelta(days=400)) == pauses[1]  # until resumed
    assert active_pause(pauses, ("other", None), T0) is None
    assert pauses[0].describe() == "paused until 2026-12-02 11:00 UTC: disk swap"
    assert pauses[1].describe("Europe/Madrid") == "paused until resumed"


# --- the real monitor --------------------------------------------------------------------------

def test_a_deploy_window_keeps_the_monitor_silent_while_the_app_restarts(
        state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    monitor = make_monitor(state, target, receiver, clock)
    rounds(monitor, clock, 2)
    open_deploy_window(state, "tasks", 42, COMMIT, "deploy", clock.now + timedelta(minutes=30), now=clock.now)
    target.up = False  # the old container stops, the new one is not up yet
    rounds(monitor, clock, 5)
    assert monitor.states["tasks"].status == "down"  # the state machine saw it all ...
    assert receiver.messages == []  # ... and said nothing
    target.up = True
    rounds(monitor, clock, 2)
    assert close_deploy_window(state, "tasks", 42, now=clock.now) is not None
    rounds(monitor, clock, 3)
    monitor.close()
    assert receiver.messages == []
    incident, = monitor.store.incidents("tasks", T0)
    assert (incident.deploy_id, incident.deploy_note) == (42, "during deploy 42 of 1a2b3c4d5e6f (deploy)")
    assert incident.ended_at is not None
    assert monitor.store.counts()[0] == 12  # every check was recorded


def test_a_down_right_after_a_deploy_names_it_and_the_rollback_command(
        state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    monitor = make_monitor(state, target, receiver, clock, deploy_grace="30m")
    rounds(monitor, clock, 2)
    open_deploy_window(state, "tasks", 42, COMMIT, "release", clock.now + timedelta(minutes=30), now=clock.now)
    rounds(monitor, clock, 2)
    close_deploy_window(state, "tasks", 42, now=clock.now)
    clock.advance(timedelta(minutes=4))
    target.up = False  # the new version falls over a few minutes later
    rounds(monitor, clock, 3)
    monitor.close()
    down, = receiver.messages
    assert down["title"] == "tasks is DOWN after deploy 42"
    assert down["message"].endswith(
        " This is 6 minutes after deploy 42 of 1a2b3c4d5e6f (release). To roll back: railguard rollback --app tasks")
    incident, = monitor.store.incidents("tasks", T0)
    assert (incident.deploy_id, incident.deploy_note) == (42, "4 minutes after deploy 42 of 1a2b3c4d5e6f (release)")


def test_an_outage_that_outlasts_the_deploy_window_is_announced_and_names_the_deploy(
        state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    monitor = make_monitor(state, target, receiver, clock)
    rounds(monitor, clock, 1)
    open_deploy_window(state, "tasks", 42, COMMIT, "deploy", clock.now + timedelta(minutes=30), now=clock.now)
    target.up = False
    rounds(monitor, clock, 4)
    assert receiver.messages == []
    close_deploy_window(state, "tasks", 42, now=clock.now)  # the smoke check failed; the window closes
    rounds(monitor, clock, 1)
    monitor.close()
    assert receiver.titles() == ["tasks is DOWN after deploy 42"]
    assert "less than a minute after deploy 42" in receiver.messages[0]["message"]


def test_a_deploy_that_never_closes_its_window_mutes_the_monitor_only_until_its_bound(
        state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    monitor = make_monitor(state, target, receiver, clock)
    open_deploy_window(state, "tasks", 42, COMMIT, "deploy", clock.now + timedelta(minutes=10), now=clock.now)
    target.up = False
    rounds(monitor, clock, 10)  # 10:00 .. 10:09: inside the window
    assert receiver.messages == []
    rounds(monitor, clock, 1)  # 10:10: the window ran out
    monitor.close()
    assert receiver.titles() == ["tasks is DOWN after deploy 42"]


def test_a_down_long_after_a_deploy_is_a_plain_down(
        state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    monitor = make_monitor(state, target, receiver, clock, deploy_grace="10m")
    open_deploy_window(state, "tasks", 42, COMMIT, "deploy", clock.now + timedelta(minutes=30), now=clock.now)
    close_deploy_window(state, "tasks", 42, now=clock.now + timedelta(minutes=1))
    clock.advance(timedelta(minutes=12))
    target.up = False
    rounds(monitor, clock, 3)
    monitor.close()
    assert receiver.titles() == ["tasks is DOWN"]
    assert "deploy" not in receiver.messages[0]["message"]


def test_another_apps_deploy_does_not_hold_this_apps_alerts(
        state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    monitor = make_monitor(state, target, receiver, clock)
    open_deploy_window(state, "billing", 7, COMMIT, "deploy", clock.now + timedelta(minutes=30), now=clock.now)
    target.up = False
    rounds(monitor, clock, 3)
    monitor.close()
    assert receiver.titles() == ["tasks is DOWN"]


def test_a_paused_target_is_checked_and_recorded_but_not_alerted_until_resumed(
        state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    monitor = make_monitor(state, target, receiver, clock)
    rounds(monitor, clock, 1)
    pause_target(state, "tasks", now=clock.now, reason="moving the disk")
    target.up = False
    rounds(monitor, clock, 6)
    assert receiver.messages == []
    assert monitor.store.counts()[0] == 7
    resumed = resume_target(state, "tasks", now=clock.now)
    assert resumed is not None and resumed.reason == "moving the disk"
    rounds(monitor, clock, 1)  # still down at the resume: announced at the next failed check
    monitor.close()
    assert receiver.titles() == ["tasks is DOWN"]
    assert resume_target(state, "tasks", now=clock.now) is None  # nothing left to resume


def test_a_pause_for_a_time_ends_by_itself(state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    monitor = make_monitor(state, target, receiver, clock)
    pause_target(state, "tasks", now=clock.now, until=clock.now + timedelta(minutes=5))
    target.up = False
    rounds(monitor, clock, 5)  # 10:00 .. 10:04
    assert receiver.messages == []
    rounds(monitor, clock, 1)  # 10:05: the pause is over
    monitor.close()
    assert receiver.titles() == ["tasks is DOWN"]


def test_a_monitor_file_from_before_deploy_windows_gains_them_and_keeps_its_incidents(state: Path) -> None:
    state.mkdir()
    old = sqlite3.connect(state / "monitor.sqlite3")
    old.executescript("""
        CREATE TABLE incidents (id INTEGER PRIMARY KEY, target TEXT NOT NULL, started_at REAL NOT NULL,
                                ended_at REAL, reason TEXT);
        INSERT INTO incidents(target, started_at, ended_at, reason) VALUES ('tasks', 1796205600, NULL, 'HTTP 503');
    """)
    old.close()
    store = MonitorStore(state / "monitor.sqlite3")
    incident, = store.incidents("tasks", T0 - timedelta(days=1))
    assert (incident.reason, incident.deploy_id, incident.deploy_note) == ("HTTP 503", None, None)
    store.close()
    window = open_deploy_window(state, "tasks", 1, None, "rollback", T0 + timedelta(minutes=30), now=T0)
    store = MonitorStore(state / "monitor.sqlite3")
    assert store.deploy_windows(T0) == [window]
    store.close()


def test_a_deploy_does_not_hang_on_a_monitor_file_that_stays_locked(state: Path) -> None:
    MonitorStore(state / "monitor.sqlite3").close()
    holder = sqlite3.connect(state / "monitor.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    done = threading.Event()
    failure: list[BaseException] = []

    def open_window_now() -> None:
        try:
            open_deploy_window(state, "tasks", 42, COMMIT, "deploy", T0 + timedelta(minutes=30), now=T0)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failure.append(exc)
        done.set()

    threading.Thread(target=open_window_now, daemon=True).start()
    try:
        assert done.wait(60), "opening the window hung on the locked file"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    error, = failure
    assert isinstance(error, Busy) and error.exit_code is ExitCode.BUSY
    with _control_store(state, "look") as store:  # a deploy waits 2 s at most, not the monitor's own 10 s
        assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
    assert str(error) == (f"cannot open the deploy window of tasks: the monitor's state {state / 'monitor.sqlite3'}"
                          " stayed busy for 2s")


def test_each_target_knows_its_app_and_a_target_naming_an_unknown_app_is_refused() -> None:
    from railguard.config import Settings
    from railguard.errors import ConfigError
    from railguard.monitor import targets_from_settings

    by_app = Settings.model_validate({"apps": {"tasks": {"url": "http://127.0.0.1:3000"}}})
    assert [(t.name, t.app) for t in targets_from_settings(by_app)] == [("tasks", "tasks")]
    named = Settings.model_validate({"apps": {"tasks": {}}, "monitor": {"targets": [
        {"name": "tasks", "url": "http://127.0.0.1:3000/health"},
        {"name": "site", "url": "http://127.0.0.1:3001/", "app": "tasks"},
        {"name": "other", "url": "http://127.0.0.1:3002/"}]}})
    assert [(t.name, t.app) for t in targets_from_settings(named)] == [("tasks", "tasks"), ("site", "tasks"),
                                                                      ("other", None)]
    wrong = Settings.model_validate({"apps": {"tasks": {}}, "monitor": {"targets": [
        {"name": "site", "url": "http://127.0.0.1:3001/", "app": "taks"}]}})
    with pytest.raises(ConfigError) as raised:
        targets_from_settings(wrong)
    assert (raised.value.message, raised.value.hint) == (
        "monitor target 'site' names app 'taks', which is not under [apps]", "Set app to one of: tasks, or leave it out")


def test_the_window_of_a_deploy_that_did_not_go_live_is_dropped_at_the_next_round(
        state: Path, target: SwitchableTarget, receiver: JsonReceiver) -> None:
    clock = Clock()
    failed_at: dict[int, datetime] = {}
    store = MonitorStore(state / "monitor.sqlite3")
    notifier = Notifier(NotificationSettings(), state, env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    monitor = Monitor([Target("tasks", target.health_url, timedelta(seconds=2), app="tasks")],
                      MonitorSettings(timeout="2s"), store=store, notifier=notifier, clock=clock,
                      deploy_outcome=lambda window: failed_at.get(window.deploy_id))
    open_deploy_window(state, "tasks", 42, COMMIT, "deploy", clock.now + timedelta(minutes=30), now=clock.now)
    target.up = False
    rounds(monitor, clock, 4)  # the build is running: held
    assert receiver.messages == []
    failed_at[42] = clock.now  # CapRover's build failed: no step after the deploy will close the window
    rounds(monitor, clock, 1)
    monitor.close()
    assert receiver.titles() == ["tasks is DOWN"]  # at once, and naming no deploy that never went live
    assert store.deploy_windows(T0) == []


def test_deploy_outcome_reads_the_deploy_history(tmp_path: Path) -> None:
    from railguard.config import Settings
    from railguard.deploy.state import DeployState, state_path
    from railguard.rehearsal.monitor_steps import deploy_outcome

    settings = Settings.model_validate({"state_dir": str(tmp_path / "state"), "apps": {"tasks": {}}})
    ended = deploy_outcome(settings)
    assert ended(window(deploy_id=1)) is None  # no history yet
    history = DeployState(state_path(settings.state_dir, None))
    failed = history.start(app="tasks", caprover_app="tasks", kind="deploy", ref="HEAD", git_hash=COMMIT, now=T0)
    live = history.start(app="tasks", caprover_app="tasks", kind="deploy", ref="HEAD", git_hash=COMMIT, now=T0)
    running = history.start(app="tasks", caprover_app="tasks", kind="deploy", ref="HEAD", git_hash=COMMIT, now=T0)
    history.finish(failed, result="failed", now=T0 + timedelta(minutes=3), detail="build failed")
    history.finish(live, result="ok", now=T0 + timedelta(minutes=4))
    assert ended(window(deploy_id=failed)) == T0 + timedelta(minutes=3)
    assert ended(window(deploy_id=live)) is None  # it went live: the step after the smoke check closes it
    assert ended(window(deploy_id=running)) is None
    assert ended(window(app="billing", deploy_id=failed)) is None
