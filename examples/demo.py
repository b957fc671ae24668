"""The demo of railguard's main job, on the bundled example app (run it with `make demo`).

It starts examples/tasks-app on 127.0.0.1 with its own database, keeps writing tasks to it
over HTTP, and meanwhile takes verified backups with railguard, lists them, verifies them
again, and restores the newest one with the stock `zstd` tool to show that it holds the
tasks written before it. Everything lives in ./demo-output/, removed at the start of the next
run; the app and the writer are stopped at the end whatever happens.
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
from pathlib import Path

from railguard.backup import list_backups

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "tasks-app" / "app.py"
OUT = Path(os.environ.get("RAILGUARD_DEMO_OUTPUT", ROOT / "demo-output")).resolve()


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def railguard(*args: str) -> subprocess.CompletedProcess[str]:
    shown = " ".join(shlex.quote(a) for a in ("railguard", *args))
    print(f"$ {shown}", flush=True)
    result = subprocess.run([sys.executable, "-m", "railguard", "--config", str(OUT / "railguard.toml"), *args],
                            text=True, capture_output=True)
    print(result.stdout + result.stderr, end="", flush=True)
    if result.returncode not in (0, 1):
        raise SystemExit(f"demo failed: railguard {' '.join(args)} exited {result.returncode}")
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


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    data, backups = OUT / "data", OUT / "backups"
    data.mkdir(parents=True)
    (OUT / "railguard.toml").write_text(
        f'[apps.tasks]\ndatabase = "{data / "tasks.db"}"\n\n'
        f'[apps.tasks.backup]\ndirectory = "{backups}"\ncompression = "zstd"\n'
        # Three backups within a minute: pruning after each (the default, 7 daily + 4 weekly)
        # would keep only the newest of the day, which is right in production and confusing here.
        "prune = false\n")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    say(f"Start the example app on {base_url} (SQLite in WAL mode at {data / 'tasks.db'})")
    log = (OUT / "app.log").open("w")
    app = subprocess.Popen([sys.executable, str(APP)], stderr=log, stdout=log,
                           env={**os.environ, "DB_PATH": str(data / "tasks.db"), "PORT": str(port),
                                "CAPROVER_GIT_COMMIT_SHA": "demo"})
    writer = TaskWriter(base_url)
    try:
        wait_healthy(base_url, app)
        writer.start()
        time.sleep(1)
        print(f"a writer is creating tasks through the API: {writer.created} so far")

        say("Take verified backups while the app keeps writing")
        for _ in range(3):
            railguard("backup")
            time.sleep(0.5)

        say("List the backups")
        railguard("backups", "list")

        say("Verify every backup again: sha256, decompression, integrity_check")
        railguard("backups", "verify", "--all")

        say("The backup log: one line per attempt")
        print((backups / "backup.log").read_text(), end="")

        writer.stop.set()
        writer.join()
        say("Restore the newest backup with the stock zstd tool, no railguard needed")
        newest = list_backups(backups, "tasks")[-1].data_path
        restored = OUT / "restored.db"
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

        say("Summary")
        print(f"the writer created {writer.created} tasks with {writer.errors} errors while 3 backups ran")
        print(f"artifacts: {shown(OUT)}/ (backups/, backup.log, railguard.toml, app.log, restored.db)")
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
