"""How long one healthcheck run costs: the probe vs ``curl -fsS``, whole process, same run.

    .venv/bin/python bench/probe.py [--runs 60]

Starts the example app on 127.0.0.1 (a free port, a temporary database), then runs each
command ``--runs`` times, interleaved round by round so that load on a shared machine hits
every command alike, and prints the median wall time of each and its ratio to curl. Docker
runs the HEALTHCHECK command every interval for the life of the container, so process
start-up is the cost that matters. Target (issue 4): the probe at most 3x curl.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "tasks-app" / "app.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the example app did not become healthy at {url}")


def run_once(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    options = parser.parse_args()
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is needed as the baseline: apt-get install curl")
    console_script = Path(sys.executable).parent / "railguard"
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        url = f"http://127.0.0.1:{port}/health"
        env = {**os.environ, "DB_PATH": f"{scratch}/tasks.db", "PORT": str(port), "CAPROVER_GIT_COMMIT_SHA": "bench"}
        app = subprocess.Popen([sys.executable, str(APP)], env=env, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(url)
            commands = {
                "curl -fsS": [curl, "-fsS", "-o", "/dev/null", url],
                "python -m railguard.probe": [sys.executable, "-m", "railguard.probe", url],
                "python -I -S probe.py (copied file)": [sys.executable, "-I", "-S",
                                                        str(ROOT / "src" / "railguard" / "probe.py"), url],
            }
            if console_script.exists():
                commands["railguard probe (console script)"] = [str(console_script), "probe", url]
            for command in commands.values():  # warm the page cache before measuring
                run_once(command)
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(options.runs):
                for name, command in commands.items():
                    times[name].append(run_once(command))
        finally:
            app.terminate()
            app.wait(10)
    baseline = statistics.median(times["curl -fsS"])
    print(f"{options.runs} runs each against the example app on 127.0.0.1, median wall time per process:")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<38} {median * 1000:7.1f} ms  {median / baseline:5.1f}x curl")


if __name__ == "__main__":
    main()
