"""How fast the command line answers: ``railguard --help``, ``status`` and ``backup --help``
against ``python -c pass``, whole process, same run.

    .venv/bin/python bench/cli.py [--runs 20] [--also SRC]

Makes a small real setup in a temporary directory (a SQLite database, a railguard.toml, one
verified backup taken with ``railguard backup``), then runs each command ``--runs`` times,
interleaved round by round so that load on a shared machine hits every command alike, and
prints the median wall time of each, its ratio to ``python -c pass`` (the interpreter's own
start-up, which no command can beat). ``--also SRC`` runs each railguard command a second time
with another source tree first on ``PYTHONPATH`` (say, main's: ``git archive main src | tar -x
-C /tmp/main``, then ``--also /tmp/main/src``), for a before/after in the same run. Targets (issue 16):
``railguard --help`` at most 0.3 s and ``railguard status`` at most 0.5 s on this machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name -> seconds: the issue's targets for a whole process.
TARGETS = {"railguard --help": 0.3, "railguard status": 0.5}


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(command: list[str], cwd: Path, ok: set[int], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one whole process: on a loaded machine the CPU
    time says what the command itself costs, the wall time what the user waited."""
    cpu, started = cpu_of_children(), time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed, cpu = time.perf_counter() - started, cpu_of_children() - cpu
    if result.returncode not in ok:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr.decode()[-500:]}")
    return elapsed, cpu


def make_setup(scratch: Path, railguard: list[str], env: dict[str, str]) -> Path:
    """A database with a few rows, its configuration, and one verified backup."""
    database = scratch / "tasks.db"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT)")
        connection.executemany("INSERT INTO tasks (title) VALUES (?)", [(f"task {n}",) for n in range(1000)])
    config = scratch / "railguard.toml"
    config.write_text(f'[apps.tasks]\ndatabase = "{database}"\n\n[apps.tasks.backup]\n'
                      f'directory = "{scratch / "backups"}"\n')
    run_once([*railguard, "--config", str(config), "backup", "--quiet"], scratch, {0}, env)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--also", type=Path, metavar="SRC",
                        help="also run each railguard command with this source tree (a src/ directory)")
    options = parser.parse_args()
    console_script = Path(sys.executable).parent / "railguard"
    railguard = [str(console_script)] if console_script.exists() else [sys.executable, "-m", "railguard"]
    with tempfile.TemporaryDirectory(prefix="railguard-bench-cli-") as name:
        scratch = Path(name)
        # An installed railguard (pipx, the image) runs from compiled bytecode. A work tree under
        # PYTHONDONTWRITEBYTECODE would compile every module on every run, which is not what a
        # user waits for: the warm-up runs write the bytecode into a private cache here.
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        config = make_setup(scratch, railguard, env)
        # status exits 1 (a warning) or 7 when something is flagged; the time is what counts here.
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], {0}),
            "railguard --help": ([*railguard, "--help"], {0}),
            "railguard status": ([*railguard, "--config", str(config), "status"], {0, 1, 7}),
            "railguard backup --help": ([*railguard, "backup", "--help"], {0}),
        }
        environments = {name: env for name in commands}
        if options.also is not None:
            other = {**env, "PYTHONPATH": str(options.also.resolve()),
                     "PYTHONPYCACHEPREFIX": str(scratch / "pycache-also")}
            for name in [name for name in commands if name.startswith("railguard")]:
                commands[f"{name} (--also)"] = commands[name]
                environments[f"{name} (--also)"] = other
        for name, (command, ok) in commands.items():  # warm the page cache and the bytecode before measuring
            run_once(command, scratch, ok, environments[name])
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(options.runs):
            for name, (command, ok) in commands.items():
                times[name].append(run_once(command, scratch, ok, environments[name]))
    baseline = statistics.median(wall for wall, _ in times["python -c pass"])
    cpu_baseline = statistics.median(cpu for _, cpu in times["python -c pass"])
    also = f"; --also {options.also}" if options.also else ""
    print(f"{options.runs} runs each, median per process ({' '.join(railguard)}{also}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    met = True
    for name, samples in times.items():
        median = statistics.median(wall for wall, _ in samples)
        cpu = statistics.median(cpu for _, cpu in samples)
        line = (f"  {name:<33} wall {median * 1000:6.0f} ms {median / baseline:5.1f}x  "
                f"cpu {cpu * 1000:6.0f} ms {cpu / cpu_baseline:5.1f}x python -c pass")
        if name in TARGETS:
            within = median <= TARGETS[name]
            met = met and within
            line += f"  target <= {TARGETS[name]:.1f} s: {'met' if within else 'NOT met'}"
        print(line)
    print("targets met" if met else "targets NOT met (on a loaded machine, run again when it is quiet)")


if __name__ == "__main__":
    main()
