"""The smoke check as the step after ``railguard deploy``: real git, the fake CapRover, the
example app as a real process, an apprise receiver, all on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from deploy.gitrepos import APP_TOKEN, Repo
from fakes.caprover import FakeCapRover
from local_http import JsonReceiver, free_port

from railguard.errors import ExitCode

UPLOAD = "/api/v2/user/apps/appData/tasks"


def write_config(tmp_path: Path, captain: FakeCapRover, repo: Repo, port: int) -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\n'
                    f'database = "{tmp_path / "no-database-yet.db"}"\n'
                    f'url = "http://127.0.0.1:{port}"\n'
                    f'[apps.tasks.deploy]\ncaprover_url = "{captain.url}"\nrepository = "{repo.path}"\n'
                    f'poll_interval = "0s"\n[apps.tasks.smoke]\nwait = "15s"\npoll_interval = "0.2s"\n')
    return path


def test_a_deploy_whose_new_process_comes_up_passes_and_says_deploy_ok_once(
        run_cli, tmp_path: Path, captain: FakeCapRover, repo: Repo, start_app, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    config = write_config(tmp_path, captain, repo, port)

    def start_new_process_once_uploaded() -> None:  # what CapRover does after the build
        deadline = time.monotonic() + 20
        while not captain.calls_to(UPLOAD, "POST") and time.monotonic() < deadline:
            time.sleep(0.05)
        start_app(commit=repo.sha(), port=port)

    starter = threading.Thread(target=start_new_process_once_uploaded)
    starter.start()
    env = {"CAPROVER_APP_TOKEN": APP_TOKEN, "RAILGUARD_NOTIFY_URLS": receiver.url}
    result = run_cli("--config", config, "deploy", "--json", env=env)
    starter.join()
    assert result.exit_code == 0, result.stdout + result.stderr
    # The smoke check, then the monitor's deploy window closed after it (deploy_steps).
    steps = {step["name"]: step for step in json.loads(result.stdout)["steps"]}
    step, window = steps["smoke"], steps["monitor"]
    assert step["name"] == "smoke" and step["ok"] is True
    assert window["name"] == "monitor" and window["status"] == "passed"
    assert step["details"]["commit"] == repo.sha()
    # Again by hand: the deploy's start and commit come from the history; no second message.
    again = run_cli("--config", config, "smoke", env=env)
    assert again.exit_code == 0, again.stdout
    assert "notification deploy_ok: duplicate" in again.stdout
    assert receiver.titles() == [f"tasks deploy OK {repo.sha()[:12]}"]


def test_a_deploy_while_the_old_process_keeps_serving_fails_the_smoke_step(
        run_cli, tmp_path: Path, captain: FakeCapRover, repo: Repo, start_app, receiver: JsonReceiver) -> None:  # type: ignore[no-untyped-def]
    old = start_app(commit="0123456789abcdef")
    port = int(old.url.rsplit(":", 1)[1])
    config = write_config(tmp_path, captain, repo, port)
    text = config.read_text().replace('wait = "15s"', 'wait = "1s"')
    config.write_text(text)
    result = run_cli("--config", config, "deploy", env={"CAPROVER_APP_TOKEN": APP_TOKEN,
                                                       "RAILGUARD_NOTIFY_URLS": receiver.url})
    assert result.exit_code == 7
    assert "FAILED smoke: smoke FAILED for tasks after" in result.stdout
    assert receiver.titles() == ["tasks deploy FAILED"]
    status = run_cli("--config", config, "status", "--json")
    smoke_row = next(row for row in json.loads(status.stdout)["rows"] if row["name"] == "smoke")
    assert smoke_row["flagged"] is True


LIBRARY_CALLER = """
import json, sys
from datetime import datetime, timezone
from pathlib import Path

from railguard.config import load_settings
from railguard.deploy import DeployJob, DeployState, build_deployer, deploy_commit
from railguard.deploy.git import Git
from railguard.deploy.state import state_path

settings = load_settings(Path(sys.argv[1]))
app = settings.apps["tasks"]
job = DeployJob(settings=settings, app_name="tasks", app=app, deployer=build_deployer("tasks", app.deploy),
                state=DeployState(state_path(settings.state_dir, app.deploy.state_file)),
                git=Git(app.deploy.repository), clock=lambda: datetime.now(timezone.utc))
report = deploy_commit(job, "HEAD")
print(json.dumps({"cli_loaded": sorted(m for m in sys.modules if m.startswith("railguard.cli")),
                  "steps": [[step.name, step.ok] for step in report.steps], "exit": int(report.exit_code)}))
"""


def test_a_python_caller_of_deploy_commit_gets_the_smoke_check_without_importing_the_cli(
        tmp_path: Path, captain: FakeCapRover, repo: Repo) -> None:
    # Nothing listens on the app's url: a smoke check that runs must fail, one that is missing passes.
    config = write_config(tmp_path, captain, repo, free_port())
    config.write_text(config.read_text().replace('wait = "15s"', 'wait = "1s"'))
    # A fresh interpreter: no other test's imports can have wired anything in.
    done = subprocess.run([sys.executable, "-c", LIBRARY_CALLER, str(config)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "CAPROVER_APP_TOKEN": APP_TOKEN})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"cli_loaded": [], "steps": [["smoke", False]], "exit": ExitCode.CHECK_FAILED}
    [upload] = captain.calls_to(UPLOAD, "POST")
    assert upload.fields["gitHash"] == repo.sha()
