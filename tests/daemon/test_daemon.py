"""railguard daemon: jobs run when due, never overlap, catch up after a stop, stop cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from railguard.backup import list_backups
from railguard.backup.verify import verify_backup
from railguard.daemon import RunLog
from railguard.logfmt import parse_line
from railguard.monitor import MonitorStore

from conftest import create_tasks_database


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(tmp_path: Path, database: Path, backup_schedule: str, port: int = 0) -> Path:
    config = tmp_path / "railguard.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[apps.tasks]\ndatabase = "{database}"\n'
        f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\nprune = false\n'
        f'[apps.tasks.schedule]\nbackup = "{backup_schedule}"\n'
        f'[daemon]\nlisten = "{f"127.0.0.1:{port}" if port else ""}"\nmonitor = false\nstop_grace = "60s"\n')
    return config


def start_daemon(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``railguard daemon`` on ``config``; ``env`` adds variables to this process's environment."""
    process = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config), "daemon"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env} if env else None)
    ready = process.stderr.readline()  # printed once its signal handlers are in place
    assert ready.startswith("railguard daemon: "), ready + process.stderr.read()
    return process


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def runs(tmp_path: Path) -> list:
    path = tmp_path / "state" / "daemon.db"
    if not path.exists():
        return []
    log = RunLog(path)
    try:
        return log.runs("backup:tasks")
    finally:
        log.close()


def stop(process: subprocess.Popen) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=90)
    return process.returncode, out, err


def test_jobs_run_when_due_and_never_overlap(tmp_path: Path, fill_with_random_rows):
    database = create_tasks_database(tmp_path / "tasks.db")
    fill_with_random_rows(database, megabytes=12)
    daemon = start_daemon(write_config(tmp_path, database, "every 1s"))
    try:
        wait_for(lambda: len([r for r in runs(tmp_path) if r.result == "ok"]) >= 3, what="three backups")
    finally:
        code, out, err = stop(daemon)
    assert code == 0, err
    finished = [r for r in runs(tmp_path) if r.result != "skipped"]
    for earlier, later in zip(finished, finished[1:]):
        assert later.started_at >= earlier.finished_at, "two runs of the same job overlapped"
    # One line per job run on stdout, in logfmt.
    ok_lines = [line for line in out.splitlines() if "job=backup:tasks" in line and "event=ok" in line]
    assert len(ok_lines) == len([r for r in runs(tmp_path) if r.result == "ok"])
    assert all(record.is_good for record in list_backups(tmp_path / "backups", "tasks"))


def test_a_missed_run_is_caught_up_at_start_and_a_recent_one_is_not(tmp_path: Path):
    database = create_tasks_database(tmp_path / "tasks.db")
    # Once a year, half a year from now: never due during the test, whatever the date (a fixed
    # "0 0 1 1 *" falls due during a run started just before midnight on 31 December).
    far_month = (datetime.now(timezone.utc).month + 5) % 12 + 1
    port = free_port()
    config = write_config(tmp_path, database, f"0 0 1 {far_month} *", port)
    log = RunLog(tmp_path / "state" / "daemon.db")
    run_id = log.start("backup:tasks", datetime.now(timezone.utc) - timedelta(days=800))
    log.finish(run_id, datetime.now(timezone.utc) - timedelta(days=800), 0, "ok", "")
    log.close()

    daemon = start_daemon(config)
    try:
        wait_for(lambda: any(r.result == "ok" and r.started_at > datetime.now(timezone.utc) - timedelta(minutes=5)
                             for r in runs(tmp_path)), what="the catch-up backup")
    finally:
        code, out, _ = stop(daemon)
    assert "event=catch-up" in out and "missed the run due at" in out
    assert len(list_backups(tmp_path / "backups", "tasks")) == 1

    # Started again right after: the last success is newer than the last scheduled run. Its
    # plan is made (and a catch-up would be logged) before /healthz reports a next run, so
    # waiting for that, not for some seconds, is enough to know it did not catch up.
    daemon = start_daemon(config)
    try:
        wait_for(lambda: _next_run(port) is not None, what="the daemon's plan on /healthz")
        assert _next_run(port) > datetime.now(timezone.utc) + timedelta(days=27), "planned a catch-up"
    finally:
        code, out, _ = stop(daemon)
    assert code == 0
    assert "event=catch-up" not in out
    assert len(list_backups(tmp_path / "backups", "tasks")) == 1


def _next_run(port: int) -> datetime | None:
    """The backup job's next run as /healthz reports it; None before the daemon has planned it."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            [job] = json.loads(response.read())["jobs"]
    except OSError:
        return None
    return None if job["next_run"] is None else datetime.fromisoformat(job["next_run"])


def test_sigterm_mid_backup_leaves_no_partial_backup(tmp_path: Path, fill_with_random_rows):
    database = create_tasks_database(tmp_path / "tasks.db")
    fill_with_random_rows(database, megabytes=60)
    daemon = start_daemon(write_config(tmp_path, database, "every 1h"))
    backups = tmp_path / "backups"
    try:
        # Wait until the first (catch-up) backup is writing its temporary files.
        wait_for(lambda: backups.is_dir() and any(".tmp-" in p.name for p in backups.iterdir()),
                 what="a backup in progress")
    finally:
        code, out, err = stop(daemon)
    assert code == 0, err
    assert [p.name for p in backups.iterdir() if ".tmp-" in p.name] == []
    for record in list_backups(backups, "tasks"):
        assert record.is_good
        verify_backup(record, tmp_path)
    [run] = runs(tmp_path)
    assert run.result in ("interrupted", "ok")  # aborted cleanly, or it had just finished
    assert "result=failed" in (backups / "backup.log").read_text() or run.result == "ok"


def test_healthz_and_metrics(tmp_path: Path):
    database = create_tasks_database(tmp_path / "tasks.db")
    port = free_port()
    daemon = start_daemon(write_config(tmp_path, database, "every 1h", port))
    try:
        wait_for(lambda: any(r.result == "ok" for r in runs(tmp_path)), what="the first backup")

        def get(path: str) -> tuple[int, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()

        wait_for(lambda: _answers(get), what="the daemon's endpoints")
        status, body = get("/healthz")
        assert status == 200 and json.loads(body)["ok"] is True
        status, metrics = get("/metrics")
        assert 'railguard_job_last_success_timestamp_seconds{job="backup:tasks"}' in metrics
        assert 'railguard_job_runs_total{job="backup:tasks",result="ok"} 1' in metrics
        # railguard's own families come with the daemon's: one scrape sees the last backup too.
        assert 'railguard_backup_last_success_timestamp_seconds{app="tasks"}' in metrics
    finally:
        stop(daemon)


def test_the_daemon_listens_on_an_ipv6_loopback_address_in_brackets(tmp_path: Path):
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError as exc:
        pytest.skip(f"this machine cannot bind the IPv6 loopback address ::1 ({exc})")
    database = create_tasks_database(tmp_path / "tasks.db")
    config = write_config(tmp_path, database, "every 1h")
    config.write_text(config.read_text().replace('listen = ""', f'listen = "[::1]:{port}"'))
    daemon = start_daemon(config)
    try:
        def get(path: str) -> tuple[int, str]:
            with urllib.request.urlopen(f"http://[::1]:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()

        wait_for(lambda: _answers(get), what="the daemon's endpoints on [::1]")
        assert get("/healthz")[0] == 200
    finally:
        code, _out, err = stop(daemon)
    assert code == 0, err


def _answers(get) -> bool:
    try:
        return get("/healthz")[0] == 200
    except OSError:
        return False


def test_schedule_shows_the_next_run_of_every_job(tmp_path: Path, run_cli):
    database = create_tasks_database(tmp_path / "tasks.db")
    write_config(tmp_path, database, "30 3 * * *")
    result = run_cli("schedule", "--json")
    assert result.exit_code == 0, result.stderr
    [job] = json.loads(result.stdout)["jobs"]
    assert job["job"] == "backup:tasks" and job["schedule"] == "30 3 * * *"
    assert job["catch_up"] is True and job["last_success"] is None


def test_a_bad_schedule_in_the_config_names_the_key(tmp_path: Path, run_cli):
    (tmp_path / "railguard.toml").write_text('[apps.tasks.schedule]\nbackup = "daily"\n')
    result = run_cli("schedule")
    assert result.exit_code == 3
    assert "apps.tasks.schedule.backup" in result.stderr and "not a cron expression" in result.stderr


def test_an_occurrence_due_while_the_job_still_runs_is_skipped_not_overlapped(tmp_path: Path):
    """The loop itself, with a job that always outlasts its interval."""
    import threading

    from railguard.daemon import Daemon, Job
    from railguard.schedule import Schedule

    slow = Job("slow", (sys.executable, "-c", "import time; time.sleep(1.0)"),
               Schedule("every 0.2s", every=timedelta(seconds=0.2)))
    log = RunLog(tmp_path / "daemon.db")
    lines: list[str] = []
    daemon = Daemon([slow], log, log=lines.append, stop_grace=timedelta(seconds=10))
    thread = threading.Thread(target=daemon.run)
    thread.start()
    wait_for(lambda: len([r for r in log.runs("slow") if r.result == "ok"]) >= 2, what="two runs of the slow job")
    daemon.stop()
    thread.join(timeout=30)
    history = log.runs("slow")
    log.close()
    finished = [r for r in history if r.result != "skipped"]
    for earlier, later in zip(finished, finished[1:]):
        assert later.started_at >= earlier.finished_at
    assert [r for r in history if r.result == "skipped"], "occurrences due during a run are skipped"
    assert any("event=skipped" in line and 'reason="the previous run is still going"' in line for line in lines)


def test_a_backup_taken_by_hand_counts_as_the_last_success(tmp_path: Path, run_cli):
    database = create_tasks_database(tmp_path / "tasks.db")
    write_config(tmp_path, database, "30 3 * * *")
    assert json.loads(run_cli("schedule", "--json").stdout)["jobs"][0]["catch_up"] is True
    assert run_cli("backup").exit_code == 0
    [job] = json.loads(run_cli("schedule", "--json").stdout)["jobs"]
    assert job["catch_up"] is False and job["last_success"] is not None


def test_schedule_shows_the_drill_job_or_why_it_never_runs(tmp_path: Path, run_cli):
    database = create_tasks_database(tmp_path / "tasks.db")
    config = write_config(tmp_path, database, "30 3 * * *")
    document = json.loads(run_cli("schedule", "--json").stdout)
    assert document["not_run"] == [{"job": "drill:tasks", "why": "[apps.tasks.drill] has no command or image"}]
    assert "drill:tasks" in run_cli("schedule").stdout
    config.write_text(config.read_text() + '[apps.tasks.drill]\ncommand = ["python3", "-m", "http.server", "{port}"]\n')
    document = json.loads(run_cli("schedule", "--json").stdout)
    assert [job["job"] for job in document["jobs"]] == ["backup:tasks", "drill:tasks"]
    assert document["jobs"][1]["schedule"] == "0 4 1 * *" and document["not_run"] == []


def test_the_daemon_runs_its_backups_as_scheduled_ones(tmp_path: Path):
    """Not as backups taken by hand, which [backup.keep_manual] protects from prune."""
    from railguard.config import load_settings
    from railguard.daemon import plan_jobs

    database = create_tasks_database(tmp_path / "tasks.db")
    config = write_config(tmp_path, database, "30 3 * * *")
    [job] = plan_jobs(load_settings(config))
    assert job.argv[-3:] == ("backup", "--scheduled", "--json")


def test_the_daemon_names_the_backups_a_scheduled_prune_removed_here_and_at_each_destination(
        tmp_path: Path, run_cli, monkeypatch):
    """The same report as `railguard backup`'s output: the log line and the run log name every
    backup the prune after the daemon's backup removed, and every copy removed off the host."""
    from railguard.cli.context import Context

    database = create_tasks_database(tmp_path / "tasks.db")
    offsite = tmp_path / "offsite"
    offsite.mkdir()
    config = write_config(tmp_path, database, "every 1h")
    text = config.read_text().replace("prune = false\n", "prune = true\n")
    config.write_text(text + f'[apps.tasks.retention]\nkeep_last = 1\n'
                             f'[apps.tasks.destinations.offsite]\nurl = "file://{offsite}"\n')
    # Two real backups long ago (the clock set back), copied to the destination; no prune then.
    old = []
    for moment in (datetime(2020, 1, 1, 3, 30, tzinfo=timezone.utc), datetime(2020, 1, 2, 3, 30, tzinfo=timezone.utc)):
        monkeypatch.setattr(Context, "now", staticmethod(lambda moment=moment: moment))
        result = run_cli("--config", config, "backup", "--scheduled", "--no-prune")
        assert result.exit_code == 0, result.stderr
        old.append(f"tasks-{moment:%Y%m%d-%H%M}")
    assert [record.name for record in list_backups(tmp_path / "backups", "tasks")] == old

    daemon = start_daemon(config)  # the catch-up backup runs at once, keep_last = 1 prunes both
    try:
        wait_for(lambda: any(r.result == "ok" for r in runs(tmp_path)), what="the daemon's backup")
    finally:
        code, out, err = stop(daemon)
    assert code == 0, err
    [new] = [record.name for record in list_backups(tmp_path / "backups", "tasks")]
    [line] = [line for line in out.splitlines() if "job=backup:tasks" in line and "event=ok" in line]
    fields = parse_line(line)
    assert fields["backup"].startswith(new + ".")
    assert fields["pruned"] == ",".join(old)
    assert fields["pruned_copies"] == ",".join(f"offsite:{name}" for name in old)
    [run] = [r for r in runs(tmp_path) if r.result == "ok"]
    assert run.summary == fields["summary"] == (f"backup {fields['backup']}; pruned {', '.join(old)}; "
                                                f"offsite pruned {', '.join(old)}")


def test_a_backup_report_is_read_after_whatever_went_to_stderr_and_a_failed_one_says_its_error():
    from railguard.daemon.jobs import read_backup_report

    document = {"ok": True, "file": "/b/tasks-20261202-0330.sqlite3.zst", "warnings": ["a destination failed"],
                "steps": {"prune": {"removed": []}, "destinations": [{"name": "nas", "pruned": []}]}}
    said = read_backup_report("warning: heartbeat: no answer\n" + json.dumps(document, indent=2) + "\n")
    assert said is not None
    assert said.fields == {"backup": "tasks-20261202-0330.sqlite3.zst", "pruned": "", "pruned_copies": ""}
    assert said.summary == "backup tasks-20261202-0330.sqlite3.zst; pruned nothing; warning: a destination failed"
    failed = {"ok": False, "error": "database /app/data/tasks.db does not exist", "hint": "Check", "exit_code": 6}
    said = read_backup_report("error: database ...\nhint: Check\n" + json.dumps(failed, indent=2) + "\n")
    assert said is not None and said.summary == "error: database /app/data/tasks.db does not exist"
    assert said.fields == {}
    # Killed before its report, or a document of another shape: the daemon falls back to the
    # output's last line.
    assert read_backup_report("backing up\n{\n  \"ok\": tr") is None
    assert read_backup_report('{"ok": true, "steps": {"destinations": [{"pruned": ["x"]}]}}\n') is None
    assert read_backup_report('{"ok": true, "steps": {"prune": []}}\n') is None


def test_daemon_json_writes_one_document_per_line_with_the_one_timestamp_format(tmp_path: Path):
    database = create_tasks_database(tmp_path / "tasks.db")
    config = write_config(tmp_path, database, "every 1s")
    # The global options after the command's name, as a user would add them to a unit file.
    process = subprocess.Popen([sys.executable, "-m", "railguard", "daemon", "--config", str(config), "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = process.stderr.readline()
        assert ready.startswith("railguard daemon: "), ready + process.stderr.read()
        wait_for(lambda: any(r.result == "ok" for r in runs(tmp_path)), what="one backup")
    finally:
        code, out, err = stop(process)
    assert code == 0, err
    documents = [json.loads(line) for line in out.splitlines()]
    ok = [d for d in documents if d.get("job") == "backup:tasks" and d.get("event") == "ok"]
    assert ok, out
    for document in documents:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", document["time"]), document


def test_planned_runs_catch_up_a_missed_run_and_otherwise_name_the_next_occurrence(tmp_path: Path):
    from railguard.config import load_settings
    from railguard.daemon.jobs import planned_runs

    database = create_tasks_database(tmp_path / "tasks.db")
    settings = load_settings(write_config(tmp_path, database, "30 3 * * *"))
    now = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    (never,) = planned_runs(settings, now)
    assert (never.job, never.schedule, never.catch_up, never.next_run) == ("backup:tasks", "30 3 * * *", True, now)
    assert never.last_success is None
    assert not (tmp_path / "state" / "daemon.db").exists(), "reading the plan created the run log"

    log = RunLog(tmp_path / "state" / "daemon.db")
    run_id = log.start("backup:tasks", now.replace(hour=3, minute=30))
    log.finish(run_id, now.replace(hour=3, minute=31), 0, "ok", "")
    log.close()
    (fresh,) = planned_runs(settings, now)
    assert not fresh.catch_up
    assert fresh.next_run == datetime(2026, 3, 11, 3, 30, tzinfo=timezone.utc)
    assert fresh.last_success is not None and fresh.last_success >= now.replace(hour=3, minute=30)
    assert fresh.as_dict()["next_run"] == fresh.next_run


def _post(url: str, body: bytes | None = None, authorization: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body or b"", method="POST")
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


PAUSE_TOKEN = "pause-token-3f9c1e7a"


def test_the_daemon_serves_the_monitor_pause_api_behind_its_token(tmp_path: Path, run_cli):
    port = free_port()
    config = write_config(tmp_path, create_tasks_database(tmp_path / "tasks.db"), "every 1h", port)
    daemon = start_daemon(config, env={"RAILGUARD_WEB_TOKEN": PAUSE_TOKEN})
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return _post(f"{base}/api/monitor/tasks/pause")[0] == 401
            except OSError:
                return False

        wait_for(answers, what="the daemon's pause API")
        status, answer = _post(f"{base}/api/monitor/tasks/pause", b'{"reason": "disk swap"}', f"Bearer {PAUSE_TOKEN}")
        assert (status, answer["ok"]) == (200, True), answer
    finally:
        code, _out, err = stop(daemon)
    assert code == 0, err
    store = MonitorStore(tmp_path / "state" / "monitor.sqlite3")
    try:
        pause, = store.pauses(datetime.now(timezone.utc))
    finally:
        store.close()
    assert (pause.name, pause.until, pause.reason) == ("tasks", None, "disk swap")
