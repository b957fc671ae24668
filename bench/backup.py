"""Benchmark: railguard backup against the plan's literal pipeline, on a ~1 GB database.

Run by hand (it takes a few minutes and needs ~4 GB free in bench/output/):

    .venv/bin/python bench/backup.py [--size-gb 1.0] [--keep]

Measures, in one run on the same database:
  (a) the plan's pipeline: sqlite3 db ".backup f"; sqlite3 f "PRAGMA integrity_check"; gzip -9 f
  (b) railguard backup with each compression (zstd default, gzip, gzip -9, none)
  (c) the floor: cp of the file plus integrity_check on the copy
and a writer's commit latency (p50/p99) while idle vs while railguard backs up.
Every figure is printed as a ratio against the baseline measured in this run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"


def build_database(path: Path, size_gb: float) -> None:
    """Tasks-like rows with two secondary indexes, until the file reaches the size."""
    if path.exists() and path.stat().st_size >= size_gb * 0.95e9:
        return
    path.unlink(missing_ok=True)
    print(f"building a {size_gb:.1f} GB database in {path} (cached for later runs) ...", flush=True)
    rng = random.Random(7)
    words = [("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))) for _ in range(5000)]
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.executescript("""
        CREATE TABLE tasks (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL, title TEXT NOT NULL,
                            body TEXT NOT NULL, done INTEGER NOT NULL, created_at INTEGER NOT NULL);
        CREATE INDEX tasks_owner ON tasks(owner, done);
        CREATE INDEX tasks_created ON tasks(created_at);
    """)
    batch = 20000
    while path.stat().st_size < size_gb * 1e9:
        rows = [(rng.randrange(5000), " ".join(rng.choices(words, k=6)), " ".join(rng.choices(words, k=90)),
                 rng.randrange(2), 1_700_000_000 + rng.randrange(50_000_000)) for _ in range(batch)]
        connection.executemany("INSERT INTO tasks(owner, title, body, done, created_at) VALUES (?,?,?,?,?)", rows)
        connection.commit()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def run(command: list[str], **kwargs) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one process."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return elapsed, usage.ru_maxrss // 1024


def drop(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class LatencyWriter(threading.Thread):
    """Commits a small transaction every 10 ms on its own connection and records each latency."""

    def __init__(self, database: Path) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.latencies: list[float] = []
        self.failures = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        connection = sqlite3.connect(self.database, timeout=30, isolation_level=None, check_same_thread=False)
        connection.execute("CREATE TABLE IF NOT EXISTS pings (id INTEGER PRIMARY KEY, at REAL)")
        while not self.stop_event.is_set():
            started = time.perf_counter()
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("INSERT INTO pings(at) VALUES (?)", (started,))
                connection.execute("COMMIT")
                self.latencies.append(time.perf_counter() - started)
            except sqlite3.Error:
                self.failures += 1
            time.sleep(0.01)
        connection.close()

    def percentiles(self) -> tuple[float, float]:
        ordered = sorted(self.latencies)
        return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true", help="keep the generated database for the next run")
    args = parser.parse_args()
    OUTPUT.mkdir(exist_ok=True)
    database = OUTPUT / "bench-tasks.db"
    build_database(database, args.size_gb)
    size = database.stat().st_size
    railguard = [sys.executable, "-m", "railguard", "backup", "--db", str(database)]
    work = OUTPUT / "work"
    drop(work)
    work.mkdir()
    print(f"database: {size / 1e9:.2f} GB, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    subprocess.run(["cat", str(database)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    results: dict[str, tuple[float, int, int | None]] = {}

    # (a) The plan's literal pipeline.
    copy = work / "plan.sqlite3"
    t1, m1 = run(["sqlite3", str(database), f".backup '{copy}'"])
    t2, m2 = run(["sqlite3", str(copy), "PRAGMA integrity_check"])
    t3, m3 = run(["gzip", "-9", str(copy)])
    results["(a) plan: .backup + integrity_check + gzip -9"] = (t1 + t2 + t3, max(m1, m2, m3),
                                                                 Path(f"{copy}.gz").stat().st_size)
    print(f"    plan steps: .backup {t1:.1f}s, integrity_check {t2:.1f}s, gzip -9 {t3:.1f}s")
    drop(Path(f"{copy}.gz"))

    # (c) The floor: cp + integrity_check.
    copy = work / "floor.sqlite3"
    t1, m1 = run(["cp", str(database), str(copy)])
    t2, m2 = run(["sqlite3", str(copy), "PRAGMA integrity_check"])
    results["(c) floor: cp + integrity_check"] = (t1 + t2, max(m1, m2), None)
    drop(copy)

    # (b) railguard backup, each compression.
    for label, flags in [("zstd (default)", []), ("gzip (level 6)", ["--compression", "gzip"]),
                         ("gzip -9", ["--compression", "gzip", "--level", "9"]),
                         ("none", ["--compression", "none"]), ("zstd, quick_check", ["--check", "quick"])]:
        target = work / label.split()[0]
        elapsed, rss = run([*railguard, "--dir", str(target), *flags])
        stored = sum(p.stat().st_size for p in target.glob("*.sqlite3*"))
        results[f"(b) railguard backup, {label}"] = (elapsed, rss, stored)
        drop(target)

    baseline = results["(a) plan: .backup + integrity_check + gzip -9"][0]
    print()
    print(f"{'pipeline':<52} {'wall':>7} {'× plan':>7} {'peak RSS':>9} {'stored':>8}")
    for label, (elapsed, rss, stored) in results.items():
        ratio = f"{stored / size:.0%}" if stored else "-"
        print(f"{label:<52} {elapsed:>6.1f}s {elapsed / baseline:>6.2f}× {rss:>6} MiB {ratio:>8}")

    # Writer latency: idle, then during a default railguard backup.
    writer = LatencyWriter(database)
    writer.start()
    time.sleep(20)  # about as long as the backup, so both p99s rest on similar sample counts
    idle = writer.percentiles()
    idle_samples = len(writer.latencies)
    idle_failures = writer.failures
    writer.latencies.clear()
    target = work / "under-load"
    run([*railguard, "--dir", str(target)])
    busy = writer.percentiles()
    busy_samples = len(writer.latencies)
    writer.stop_event.set()
    writer.join()
    drop(target)
    print()
    print(f"writer commit latency   idle p50 {idle[0]:.2f} ms  p99 {idle[1]:.2f} ms  ({idle_samples} commits)")
    print(f"                        during backup p50 {busy[0]:.2f} ms ({busy[0] / idle[0]:.2f}× idle)  "
          f"p99 {busy[1]:.2f} ms ({busy[1] / idle[1]:.2f}× idle)  ({busy_samples} commits)")
    print(f"failed commits          {idle_failures + writer.failures}")
    drop(work)
    if not args.keep:
        drop(database)
        for suffix in ("-wal", "-shm"):
            drop(Path(f"{database}{suffix}"))


if __name__ == "__main__":
    main()
