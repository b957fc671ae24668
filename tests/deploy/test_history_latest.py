"""``DeployState.latest``: the newest deploy of one app, as the first row of its history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from railguard.deploy.state import DeployState

T0 = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)


def test_latest_is_the_first_of_the_history_and_of_that_app_only(tmp_path: Path) -> None:
    state = DeployState(tmp_path / "deploys.sqlite3")
    assert state.latest("tasks") is None
    for index, app in enumerate(["tasks", "notes", "tasks", "notes"]):
        deploy = state.start(app=app, caprover_app=app, kind="deploy", ref="main", git_hash=f"{index:040x}",
                             now=T0 + timedelta(minutes=index))
        state.finish(deploy, result="ok", now=T0 + timedelta(minutes=index, seconds=30))
    latest = state.latest("tasks")
    assert latest is not None and latest == state.history("tasks")[0] and latest.git_hash == f"{2:040x}"
    assert state.latest("nobody") is None
