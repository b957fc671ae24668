"""The demo of railguard on the bundled example app (run it with `make demo`).

On this machine alone, in under a minute: it starts examples/tasks-app on 127.0.0.1 and keeps
creating tasks through its API while railguard

1. takes verified backups of the live database, lists them and explains a prune dry-run,
2. copies them to a second "disk" (a file:// destination) and verifies the copies there,
3. runs a restore drill: a second instance of the app boots on a restored copy,
4. guards a repository with the pre-receive hook: a passing push lands, a failing one is refused,
5. runs the post-deploy smoke check against the app,
6. and ends with `railguard status`.

Everything lives in ./demo-output/ (or $RAILGUARD_DEMO_OUTPUT), replaced at the next run; the app
and the writer are stopped at the end whatever happens.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from railguard.backup import list_backups

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "tasks-app" / "app.py"
OUT = Path(os.environ.get("RAILGUARD_DEMO_OUTPUT", ROOT / "demo-output")).resolve()
# The demo talks to its own local servers only; keep any notification or git settings of the
# person running it out of the way.
CLEAN_ENV = {key: value for key, value in os.environ.items()
             if not key.startswith(("RAILGUARD_", "GIT_", "CAPROVER_"))}


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def railguard(*args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    print(f"$ {' '.join(shlex.quote(a) for a in ('railguard', *args))}", flush=True)
    result = subprocess.run([sys.executable, "-m", "railguard", "--config", str(OUT / "railguard.toml"), *args],
                            text=True, capture_output=True, env=CLEAN_ENV)
    print(result.stdout + result.stderr, end="", flush=True)
    if result.returncode not in expect:
        raise SystemExit(f"demo failed: railguard {' '.join(args)} exited {result.returncode}")
    return result


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**CLEAN_ENV, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@localhost",
           "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@localhost"}
    result = subprocess.run(["git", *args], cwd=cwd, text=True, capture_output=True, env=env)
    if check and result.returncode != 0:
        raise SystemExit(f"demo failed: git {' '.join(args)}: {result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TaskWriter(threading.Thread):
    """Creates a task every few milliseconds through the app's API, like the bot's users."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.created = 0
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            body = json.dumps({"title": f"demo task {self.created + 1}"}).encode()
            request = urllib.request.Request(f"{self.base_url}/tasks", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    response.read()
                self.created += 1
            except OSError:
                self.errors += 1
            time.sleep(0.002)


def wait_healthy(base_url: str, app: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise SystemExit("demo failed: the example app exited at start-up")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("demo failed: the example app did not become healthy")


def write_config(base_url: str) -> None:
    data, state = OUT / "data", OUT / "state"
    (OUT / "railguard.toml").write_text(f"""\
state_dir = "{state}"

[apps.tasks]
database = "{data / 'tasks.db'}"
url = "{base_url}"

[apps.tasks.backup]
directory = "{OUT / 'backups'}"
# Several backups within a minute: pruning after each (the default policy, 7 daily + 4 weekly)
# would keep only the newest of the day. Right in production, confusing in a demo: the demo
# shows the prune as a dry run instead.
prune = false
# The demo's backups, run by hand, stand in for nightly ones: unprotected, so the dry run shows
# the policy's own reasons (a backup run by hand is protected for 7 days by default).
keep_manual = "0s"

[apps.tasks.destinations.second-disk]
url = "file://{OUT / 'second-disk'}"

[apps.tasks.drill]
command = [{json.dumps(sys.executable)}, {json.dumps(str(APP))}]
env = {{ DB_PATH = "{{db}}", PORT = "{{port}}", CAPROVER_GIT_COMMIT_SHA = "drill" }}
start_timeout = "30s"

[apps.tasks.deploy]
test_command = ["sh", "run-tests.sh"]
test_timeout = "30s"

[apps.tasks.smoke]
wait = "20s"
poll_interval = "0.5s"
""")


def push_through_the_hook() -> None:
    forge = OUT / "forge" / "tasks.git"
    work = OUT / "work"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(forge), cwd=OUT)
    railguard("hook", "install", str(forge))
    git("clone", "--quiet", str(forge), str(work), cwd=OUT, check=False)
    (work / "run-tests.sh").write_text("echo 'tasks: 3 tests'\necho ok\n")
    git("add", "run-tests.sh", cwd=work)
    git("commit", "--quiet", "-m", "tests that pass", cwd=work)
    print("$ git push origin main   # tests pass")
    passed = git("push", "origin", "main", cwd=work, check=False)
    print(passed.stderr, end="")
    (work / "run-tests.sh").write_text("echo 'tasks.test: expected 3 tasks, got 2' >&2\nexit 1\n")
    git("commit", "--quiet", "-am", "a change that breaks the tests", cwd=work)
    print("$ git push origin main   # tests fail")
    refused = git("push", "origin", "main", cwd=work, check=False)
    print(refused.stderr, end="")
    head = git("rev-parse", "main", cwd=forge).stdout.strip()
    if passed.returncode != 0 or refused.returncode == 0 or head != git("rev-parse", "HEAD~1", cwd=work).stdout.strip():
        raise SystemExit("demo failed: the hook did not accept the passing push and refuse the failing one")
    print(f"main on the server is still {head[:12]}: the failing commit never landed")


def main() -> None:
    started = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "data").mkdir(parents=True)
    # The "second disk": railguard never creates a destination's root (an unmounted NAS must
    # fail loudly, not fill the local disk), so it exists before the first copy.
    (OUT / "second-disk").mkdir()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    write_config(base_url)

    say(f"Start the example app on {base_url} (SQLite in WAL mode)")
    app_started = datetime.now(timezone.utc)
    log = (OUT / "app.log").open("w")
    app = subprocess.Popen([sys.executable, str(APP)], stderr=log, stdout=log,
                           env={**CLEAN_ENV, "DB_PATH": str(OUT / "data" / "tasks.db"), "PORT": str(port),
                                "CAPROVER_GIT_COMMIT_SHA": "demo"})
    writer = TaskWriter(base_url)
    try:
        wait_healthy(base_url, app)
        writer.start()
        time.sleep(1)
        print(f"a writer is creating tasks through the API: {writer.created} so far")

        say("1. Verified backups while the app keeps writing (each is also copied to the second disk)")
        for _ in range(3):
            railguard("backup")
            time.sleep(0.3)
        railguard("backups", "list")
        railguard("backups", "verify", "--all")
        print("backup.log, one line per attempt:")
        print((OUT / "backups" / "backup.log").read_text(), end="")

        say("What the plan's retention (7 daily + 4 weekly) would do, and why")
        railguard("prune", "--dry-run")

        say("2. The copies on the second disk, verified there")
        railguard("backups", "list", "--dest", "second-disk")
        railguard("backups", "verify", "--all", "--dest", "second-disk")

        say("3. Restore drill: a second instance of the app boots on the newest backup")
        railguard("drill")

        writer.stop.set()
        writer.join()
        newest = list_backups(OUT / "backups", "tasks")[-1].data_path
        restored = OUT / "restored.db"
        say("Any backup also restores with the stock zstd tool, without railguard")
        print(f"$ zstd -d {shown(newest)} -o {shown(restored)}")
        if shutil.which("zstd"):
            subprocess.run(["zstd", "-q", "-d", str(newest), "-o", str(restored)], check=True)
        else:  # a machine without the zstd tool: the same bytes through the library
            import zstandard

            restored.write_bytes(zstandard.ZstdDecompressor().stream_reader(newest.open("rb")).read())
        connection = sqlite3.connect(restored)
        count = connection.execute("SELECT count(*) FROM tasks").fetchone()[0]
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
        connection.close()
        print(f"restored copy: {count} tasks, integrity_check {check}")

        say("4. Deploy guardrail B: the pre-receive hook runs the tests on every push to main")
        push_through_the_hook()

        say("5. Post-deploy smoke check: a new process, migrations applied, the expected commit")
        railguard("smoke", "--since", app_started.isoformat(), "--commit", "demo", "--no-notify")

        say("6. One screen for a person")
        railguard("status", expect=(0, 7))

        say("Summary")
        print(f"the writer created {writer.created} tasks with {writer.errors} errors while 3 backups ran")
        print(f"artifacts: {shown(OUT)}/ (backups/, second-disk/, forge/, state/, railguard.toml, app.log, "
              f"restored.db); the demo took {time.monotonic() - started:.0f}s")
    finally:
        writer.stop.set()
        app.terminate()
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()
        log.close()


if __name__ == "__main__":
    main()
