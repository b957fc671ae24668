"""A site with a history, built with the real writers and an injected clock.

Seven daily backups of a real SQLite database (``take_backup`` with ``now`` set to each simulated
day), one of them whose verification failed, copied to a ``file://`` destination, a passed and a failed restore drill in
``drill.log``, three deploys in the deploy history, the last two made by gate runs (in a real
queue, written by the gate's own :class:`~railguard.gate.queue.RunQueue`), and a monitor whose state machine saw a
five-minute outage, all seen at :data:`NOW`; heartbeats around the newest backup (answered) and
the last drill (a 404), sent by the jobs' own :class:`~railguard.notify.watch.JobWatch` to a real
ping server on 127.0.0.1; and a second app, ``notes``, never backed up. Every page and view in tests/web is of this site,
but for those of :func:`build_pages_site`: an app whose backups are page generations.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import create_tasks_database
from local_http import PingReceiver
from railguard.backup.engine import take_backup
from railguard.backup.protection import protect
from railguard.backup.manifest import Manifest
from railguard.backup.naming import MANIFEST_SUFFIX
from railguard.config import Settings
from railguard.deploy.state import DeployState, state_path
from railguard.destinations.replicate import replicate
from railguard.drill.runner import LOG_NAME as DRILL_LOG
from railguard.gate.queue import QUEUE_NAME, Run, RunQueue, gate_directory
from railguard.logfmt import append_line
from railguard.monitor.state import CheckResult, Policy, TargetState, step
from railguard.monitor.store import MonitorStore
from railguard.notify.watch import JobWatch
from railguard.pages.store import GenerationManifest
from railguard.pages.writer import take_generation
from railguard.web.app import Access, create_web_app
from railguard.webserver import BackgroundServer, ConnectionLimits

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
#: Daily backups at 03:30 on each of these days before NOW's day; the newest is 8h30m old.
BACKUP_DAYS = 7
#: The backup (by age in days) whose verification failed.
FAILED_DAY = 2
#: Monitor rounds: one a minute over the last hour; failures from minute 20 to 24 (a 5 min outage).
ROUNDS = 60
DOWN_FROM, DOWN_UNTIL = 20, 25
#: A failed drill's output holds this: a test log must never reach a page.
DRILL_OUTPUT = "TEST-LOG-LINE database password is hunter2-but-longer"
DEPLOY_COMMITS = ("a1b2c3d4e5f60718", "b2c3d4e5f6071829", "c3d4e5f607182930")
#: A gate run's commit message and summary: they stay on the gate, never on a page.
COMMIT_MESSAGE = "COMMIT-MESSAGE-LINE fix the login form"
GATE_SUMMARY = "TEST-LOG-LINE 41 passed in 3.20s"
#: The secret part of every ping URL (a healthchecks check's UUID), and the variables holding them.
PING_UUID = "0b5e55ed-5ec2-4e70-9a11-000000c0ffee"
HEARTBEAT_VARS = {"backup": "TASKS_BACKUP_PING_URL", "drill": "TASKS_DRILL_PING_URL",
                  "replicate": "TASKS_REPLICATE_PING_URL"}


@dataclass(frozen=True)
class Site:
    settings: Settings
    now: datetime
    backups: Path
    #: The ping URL of each heartbeat (secrets: no page may show one).
    ping_urls: dict[str, str] = dataclasses.field(default_factory=dict)
    #: deploy history id -> the gate run that made it.
    gate_runs: dict[int, int] = dataclasses.field(default_factory=dict)


def _config(tmp_path: Path, database: Path) -> Settings:
    return Settings.model_validate({
        "state_dir": str(tmp_path / "state"),
        "apps": {"tasks": {"database": str(database), "url": "http://127.0.0.1:9/",
                           "backup": {"directory": str(tmp_path / "backups")},
                           "drill": {"command": ["true"]},
                           "heartbeat": {f"{job}_url_env": var for job, var in HEARTBEAT_VARS.items()},
                           "destinations": {"offsite": {"url": f"file://{tmp_path / 'offsite'}"}}},
                 # A second app that was never backed up: the page must show it failing.
                 "notes": {"database": str(tmp_path / "notes.db"),
                           "backup": {"directory": str(tmp_path / "notes-backups")}}},
        "daemon": {"listen": ""},
    })


def _grow(database: Path, rows: int) -> None:
    with sqlite3.connect(database) as connection:
        connection.executemany("INSERT INTO tasks(title) VALUES (?)", [(f"day task {i} " + "x" * 200,)
                                                                     for i in range(rows)])
    connection.close()


def _fail_verification(directory: Path, name: str) -> None:
    """The manifest a failed check leaves: the backup is there, but not verified."""
    path = directory / f"{name}{MANIFEST_SUFFIX}"
    manifest = Manifest.read(path)
    path.write_bytes(dataclasses.replace(manifest, verified=False,
                                         check_result="*** in database main *** Page 5: btree page damaged").to_json())


def _monitor(settings: Settings, now: datetime) -> None:
    store = MonitorStore.in_state_dir(settings.state_dir)
    state = TargetState()
    start = now - timedelta(minutes=ROUNDS)
    try:
        for minute in range(ROUNDS):
            ok = not DOWN_FROM <= minute < DOWN_UNTIL
            check = CheckResult(ok, start + timedelta(minutes=minute), "" if ok else "HTTP 503",
                                (0.020 + (minute % 7) / 1000) if ok else None)
            state, _ = step(state, check, Policy(failure_threshold=2, success_threshold=1))
            store.record([("tasks", "http://127.0.0.1:9/health", check, state)])
    finally:
        store.close()


def build_site(tmp_path: Path, now: datetime = NOW, days: int = BACKUP_DAYS) -> Site:
    database = create_tasks_database(tmp_path / "tasks.db")
    settings = _config(tmp_path, database)
    app = settings.apps["tasks"]
    names = []
    for age in range(days - 1, -1, -1):
        _grow(database, 50 * (days - age))
        taken = (now - timedelta(days=age)).replace(hour=3, minute=30)
        names.append((age, take_backup(database, app.backup, now=taken, app="tasks").manifest.name))
    _fail_verification(app.backup.directory, dict(names)[FAILED_DAY])
    drill_log = app.backup.directory / DRILL_LOG
    append_line(drill_log, {"time": now - timedelta(days=3, hours=8), "app": "tasks", "backup": names[1][1],
                            "mode": "command", "result": "failed", "step": "health",
                            "error": "/health did not answer 200 within 2s", "total_s": 2.31,
                            "output": DRILL_OUTPUT})
    append_line(drill_log, {"time": now - timedelta(days=1, hours=8), "app": "tasks", "backup": names[-2][1],
                            "mode": "command", "result": "ok", "total_s": 4.52})
    (tmp_path / "offsite").mkdir()
    replicate(settings, "tasks", app, now=now - timedelta(hours=8))
    history = DeployState(state_path(settings.state_dir, app.deploy.state_file))
    queue = RunQueue(gate_directory(settings) / QUEUE_NAME)
    gate_runs = {}
    for index, (commit, result) in enumerate(zip(DEPLOY_COMMITS, ("ok", "failed", "ok"))):
        started = now - timedelta(days=5 - 2 * index)
        # The first deploy was made by hand; the gate tested and deployed the two after it.
        run = _gate_run(queue, commit, started) if index else None
        deploy = history.start(app="tasks", caprover_app="tasks", kind="deploy", ref="main", git_hash=commit,
                               now=started)
        history.finish(deploy, result=result, now=started + timedelta(minutes=2),
                       detail="smoke check failed: /health 503" if result == "failed" else None)
        if run is not None:
            # What gate/worker.py does once the deploy pipeline answered, then at the run's end.
            queue.update(run.id, deploy_id=deploy)
            queue.finish(run.id, "deployed" if result == "ok" else "rolled_back", GATE_SUMMARY,
                         now=started + timedelta(minutes=3))
            gate_runs[deploy] = run.id
    _monitor(settings, now)
    ping_urls = _heartbeats(settings, now)
    return Site(settings, now, app.backup.directory, ping_urls, gate_runs)


def _gate_run(queue: RunQueue, commit: str, now: datetime) -> Run:
    """A push that the gate queued, claimed and tested (gate/service.py, gate/worker.py)."""
    queued = queue.enqueue(app="tasks", commit=commit, ref="refs/heads/main", source="webhook", now=now,
                           title=COMMIT_MESSAGE, pusher="ana", delivery_id=f"delivery-{commit}")
    run = queue.claim_next("tasks", now=now)
    assert run is not None and run.id == queued.run_id
    queue.update(run.id, tests_started_at=now, tests_finished_at=now + timedelta(seconds=40),
                 summary=GATE_SUMMARY)
    return run


def _heartbeats(settings: Settings, now: datetime) -> dict[str, str]:
    """The backup's pings answered at the newest backup; the drill's answered 404 (a check that
    was deleted) at the last drill; replicate never ran. Each through the jobs' own watch."""
    app = settings.apps["tasks"]
    server = PingReceiver()
    try:
        urls = {job: f"{server.base}/ping/{PING_UUID}-{job}" for job in HEARTBEAT_VARS}
        env = {var: urls[job] for job, var in HEARTBEAT_VARS.items()}
        for job, at, status in (("backup", now.replace(hour=3, minute=30), 200),
                                ("drill", now - timedelta(days=1, hours=8), 404)):
            server.status = status
            watch = JobWatch(settings, "tasks", app, job, now=at, env=env, sleep=lambda seconds: None)
            watch.start()
            watch.succeeded(0, f"{job} done")
        return urls
    finally:
        server.stop()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return build_site(tmp_path)


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(site, access)``: the status page on a real server on 127.0.0.1; returns its base URL."""
    servers: list[BackgroundServer] = []

    def start(site: Site, access: Access = Access(None)) -> str:
        server = BackgroundServer(create_web_app(site.settings, access, lambda: site.now), host="127.0.0.1", port=0,
                                  limits=ConnectionLimits(), name="railguard-web-test").start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop()


#: The page-generation site (``kind = "pages"``): minutes before NOW of each generation, oldest first.
GENERATION_MINUTES = (2 * 24 * 60, 40, 30, 20, 10)
#: The newest generation's manifest says it was not verified (damaged at rest, or edited).
DAMAGED_GENERATION = -1
#: The oldest generation is protected; of the rest, retention keeps the last two verified ones.
GENERATION_KEEP_LAST = 2


@dataclass(frozen=True)
class PagesSite:
    settings: Settings
    now: datetime
    backups: Path
    #: Every generation's manifest, oldest first, as the writer published it.
    manifests: list[GenerationManifest]
    #: The whole-file backup taken before the app moved to generations.
    file_backup: str


def build_pages_site(tmp_path: Path, now: datetime = NOW) -> PagesSite:
    """An app with ``kind = "pages"``: a whole-file backup three days old (taken before it moved
    to generations), then real generations (``take_generation``) of a growing database, the
    oldest protected, the newest with a manifest that is not verified; retention keeps the last 2."""
    database = create_tasks_database(tmp_path / "tasks.db", rows=5000)
    settings = Settings.model_validate({
        "state_dir": str(tmp_path / "state"), "daemon": {"listen": ""},
        "apps": {"tasks": {"database": str(database), "url": "http://127.0.0.1:9/",
                           "backup": {"directory": str(tmp_path / "backups"), "kind": "pages"},
                           "retention": {"keep_last": GENERATION_KEEP_LAST}}}})
    app = settings.apps["tasks"]
    file_backup = take_backup(database, app.backup, now=now - timedelta(days=3), app="tasks").manifest.name
    taken = []
    for minutes in GENERATION_MINUTES:
        _grow(database, 40)
        taken.append(take_generation(database, app.backup, now=now - timedelta(minutes=minutes), app="tasks"))
    manifests = [result.manifest for result in taken]
    protect(app.backup.directory, manifests[0].name, "before the migration", until=None, now=now)
    damaged = taken[DAMAGED_GENERATION].path
    damaged.write_text(json.dumps({**json.loads(damaged.read_bytes()), "verified": False}))
    return PagesSite(settings, now, app.backup.directory, manifests, file_backup)


@pytest.fixture
def pages_site(tmp_path: Path) -> PagesSite:
    return build_pages_site(tmp_path)
