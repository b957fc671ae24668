"""A small production for the runbook test: the example app serving a real WAL database, the
fake CapRover restarting it after every build it finishes (as CapRover restarts the container
on the same volume), a bare git repository standing in for Forgejo with a developer's clone, a
file:// destination, and a railguard.toml pointing at all of it.

The runbook shows production addresses (/app/data, the app on 127.0.0.1:3000, the repository
at /srv/git/tasks.git, the gate on 127.0.0.1:8787); :meth:`Sandbox.localize` maps them to this
sandbox so the commands stay as an on-call person types them."""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.gitrepos import PASSWORD, TEST_SCRIPT, git
from example_app import AppProcess
from fakes.caprover import Deployment, FakeCapRover
from local_http import JsonReceiver, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TASKS_APP = REPO_ROOT / "examples" / "tasks-app" / "app.py"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
GATE_SECRET = "runbook-gate-s3cret-never-shown"

#: A Forgejo stand-in: after a push lands, deliver the signed push webhook to the gate, as
#: Forgejo does (Forgejo itself cannot run here).
POST_RECEIVE = """#!{python}
import json, sys, urllib.request
sys.path.insert(0, {tests!r})
from fakes.forgejo import push_payload, signed_headers
for line in sys.stdin:
    old, new, ref = line.split()
    body = json.dumps(push_payload(ref=ref, before=old, after=new, clone_url={clone_url!r})).encode()
    request = urllib.request.Request({gate!r} + "/hooks/forgejo", data=body, method="POST",
                                     headers=signed_headers(body, {secret!r}))
    with urllib.request.urlopen(request, timeout=10) as answer:
        print("webhook delivered:", answer.status)
"""


class Production:
    """The example app on a fixed port and database, restarted with the commit CapRover built."""

    def __init__(self, data: Path) -> None:
        self.database = data / "tasks.db"
        self.app = AppProcess()
        self.commit, self.broken = "unknown", False
        #: What a build that cannot migrate the database runs on (a schema from a newer build).
        self.unmigratable = data.parent / "newer-build" / "tasks.db"

    @property
    def url(self) -> str:
        return self.app.url

    def start(self, commit: str = "unknown", *, broken: bool = False) -> None:
        self.commit, self.broken = commit, broken
        self.app.run(self.unmigratable if broken else self.database, commit)

    def stop(self) -> None:
        self.app.stop()

    def add_tasks(self, count: int) -> None:
        for i in range(count):
            # Long titles: a database of ~100 KiB, bigger than what situations.backup_failed lets a write reach.
            body = json.dumps({"title": f"task {i} " + "x" * 400}).encode()
            request = urllib.request.Request(f"{self.url}/tasks", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as answer:
                assert answer.status == 201

    def make_unmigratable_database(self) -> None:
        self.unmigratable.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.unmigratable) as db:
            db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
            db.execute("INSERT INTO schema_migrations VALUES (3, 'future', '2026-01-01')")


class RestartingCapRover(FakeCapRover):
    """The fake CapRover; each build it finishes restarts production with the built commit. A
    tree holding SMOKE_FAIL is a build that cannot migrate the database: /health answers 503."""

    production: Production

    def built(self, deployment: Deployment) -> None:
        if not deployment.ok:
            return
        # The commit reaches the app the real way: the build arg CAPROVER_GIT_COMMIT_SHA, which
        # the tree's Dockerfile re-exports with ENV (the image's environment); nothing else.
        commit = deployment.environment.get("CAPROVER_GIT_COMMIT_SHA") or "unknown"
        names: set[str] = set()
        if deployment.tree:
            with tarfile.open(fileobj=io.BytesIO(deployment.tree)) as archive:
                names = {member.name.removeprefix("./") for member in archive.getmembers()}
        self.production.start(commit, broken="SMOKE_FAIL" in names)


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "app" / "data"
        self.data.mkdir(parents=True)
        self.backups = self.data / "backups"
        self.nas = root / "nas"
        self.nas.mkdir()
        self.state = root / "state"
        self.bare = root / "forgejo" / "tasks.git"
        self.work = root / "dev" / "tasks"
        self.gate_port = free_port()
        self.production = Production(self.data)
        self.captain = RestartingCapRover(password=PASSWORD)
        self.captain.production = self.production
        self.gate: subprocess.Popen[bytes] | None = None
        self.config = root / "railguard.toml"
        #: Where the alerts go (an apprise json:// receiver), so a test can read what was sent.
        self.inbox: JsonReceiver | None = None

    # --- set-up and tear-down -------------------------------------------------------------------

    def start(self) -> None:
        self.inbox = JsonReceiver()
        self.captain.start()
        self.production.make_unmigratable_database()
        self.production.start()
        self.production.add_tasks(200)
        self._make_repositories()
        self.captain.add_app("tasks", repository=self.bare)
        self._write_config()

    def stop(self) -> None:
        self.stop_gate()
        self.production.stop()
        self.captain.stop()
        if self.inbox is not None:
            self.inbox.stop()

    def _make_repositories(self) -> None:
        self.bare.parent.mkdir(parents=True)
        subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(self.bare)], check=True)
        subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(self.work)], check=True)
        for key, value in (("user.name", "Dev"), ("user.email", "dev@example.test"), ("commit.gpgsign", "false"),
                           ("tag.gpgsign", "false")):
            git(self.work, "config", key, value)
        git(self.work, "remote", "add", "origin", str(self.bare))
        self.commit("first", {"captain-definition": '{"schemaVersion": 2, "dockerfilePath": "./Dockerfile"}\n',
                              "Dockerfile": "FROM python:3.11-slim\nARG CAPROVER_GIT_COMMIT_SHA\n"
                              "ENV CAPROVER_GIT_COMMIT_SHA=$CAPROVER_GIT_COMMIT_SHA\nCOPY . /app\n",
                              "run-tests.sh": TEST_SCRIPT})
        git(self.work, "push", "--quiet", "origin", "main")
        git(self.work, "branch", "--quiet", "--set-upstream-to=origin/main", "main")

    def _write_config(self) -> None:
        def q(value: object) -> str:
            return json.dumps(str(value))

        self.config.write_text("\n".join([
            'timezone = "UTC"', f"state_dir = {q(self.state)}", "",
            "[apps.tasks]", f"database = {q(self.production.database)}", f"url = {q(self.production.url)}", "",
            "[apps.tasks.backup]", f"directory = {q(self.backups)}", "",
            "[apps.tasks.destinations.nas]", f"url = {q('file://' + str(self.nas))}", "",
            "[apps.tasks.drill]", f"command = [{q(sys.executable)}, {q(TASKS_APP)}]",
            'env = { DB_PATH = "{db}", CAPROVER_GIT_COMMIT_SHA = "drill" }', 'start_timeout = "30s"',
            'stop_grace = "5s"', "",
            "[[apps.tasks.drill.assertions]]", 'sql = "SELECT count(*) FROM tasks"', 'expect = "> 0"', "",
            "[apps.tasks.smoke]", 'wait = "3s"', 'poll_interval = "0.2s"', 'timeout = "2s"', "",
            "[apps.tasks.deploy]", f"caprover_url = {q(self.captain.url)}", 'mode = "login"', 'poll_interval = "0s"',
            f"repository = {q(self.work)}", 'test_command = ["sh", "run-tests.sh"]', 'test_timeout = "60s"', "",
            "[monitor]", 'interval = "1s"', 'timeout = "2s"', "",
            # The gate's sandbox (its test suites, the rehearsal of a pushed app) shows /usr and these:
            # this interpreter and the example app the drill command names.
            "[gate]", 'host = "127.0.0.1"', f"port = {self.gate_port}",
            f"isolation_paths = [{', '.join(q(p) for p in sorted({sys.prefix, sys.base_prefix}))}, "
            f"{q(TASKS_APP.parent)}]", "",
            "[gate.apps.tasks]", 'repository = "dev/tasks"', f"clone_url = {q('file://' + str(self.bare))}", "",
        ]))

    # --- what the commands see ------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {"PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(self.root),
                "LANG": "C.UTF-8", "RAILGUARD_CONFIG": str(self.config), "CAPROVER_PASSWORD": PASSWORD,
                "RAILGUARD_GATE_SECRET": GATE_SECRET, "GIT_CONFIG_NOSYSTEM": "1",
                "RAILGUARD_NOTIFY_URLS": self.inbox.url if self.inbox else ""}

    def alert_titles(self) -> list[str]:
        return self.inbox.titles() if self.inbox else []

    def localize(self, command: str) -> str:
        """The runbook's production addresses, replaced by this sandbox's."""
        for production, here in (("/app/data", str(self.data)), ("http://127.0.0.1:3000", self.production.url),
                                 ("http://127.0.0.1:8787", f"http://127.0.0.1:{self.gate_port}"),
                                 ("/srv/git/tasks.git", str(self.bare))):
            command = command.replace(production, here)
        return command

    def run(self, command: str, *, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """One runbook line, as a shell runs it, in the developer's clone."""
        return subprocess.run(["bash", "-c", self.localize(command)], cwd=self.work, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def railguard(self, *args: str, max_file_size: int | None = None) -> subprocess.CompletedProcess[str]:
        """railguard itself, for the set-up of a situation (not a runbook line). ``max_file_size``
        caps the size of any file it writes (RLIMIT_FSIZE): a real write error, as on a full disk."""

        def limit() -> None:
            if max_file_size is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, max_file_size))

        return subprocess.run([str(VENV_BIN / "railguard"), *args], cwd=self.work, env=self.env(),
                              capture_output=True, text=True, timeout=180, preexec_fn=limit)

    # --- the developer's side -------------------------------------------------------------------

    def commit(self, message: str, files: dict[str, str | None] | None = None) -> str:
        for name, text in (files or {}).items():
            target = self.work / name
            if text is None:
                target.unlink(missing_ok=True)
            else:
                target.write_text(text)
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "--allow-empty", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def remote_head(self) -> str:
        return git(self.bare, "rev-parse", "refs/heads/main")

    # --- the webhook gate (option C) ------------------------------------------------------------

    def start_gate(self) -> None:
        """`railguard gate serve` as a process, and Forgejo's webhook as a post-receive hook."""
        hook = self.bare / "hooks" / "post-receive"
        hook.write_text(POST_RECEIVE.format(python=sys.executable, tests=str(REPO_ROOT / "tests"),
                                            clone_url="file://" + str(self.bare), secret=GATE_SECRET,
                                            gate=f"http://127.0.0.1:{self.gate_port}"))
        hook.chmod(0o755)
        self.gate = subprocess.Popen([str(VENV_BIN / "railguard"), "gate", "serve"], cwd=self.root, env=self.env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            assert self.gate.poll() is None, f"railguard gate serve exited {self.gate.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.gate_port}/healthz", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "the gate did not answer /healthz"
                time.sleep(0.1)

    def wait_for_gate(self, timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.gate_port}/runs", timeout=5) as answer:
                runs = json.load(answer)["runs"]
            if runs and all(run["status"] not in {"queued", "running"} for run in runs):
                return runs
            time.sleep(0.2)
        raise AssertionError("the gate's runs did not finish")

    def stop_gate(self) -> None:
        (self.bare / "hooks" / "post-receive").unlink(missing_ok=True)
        if self.gate is not None and self.gate.poll() is None:
            os.killpg(self.gate.pid, signal.SIGTERM)
            try:
                self.gate.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.gate.pid, signal.SIGKILL)
                self.gate.wait()
        self.gate = None
