"""Benchmark: page-level generations (docs/pages.md) against whole-file backups, on a ~1 GB database.

Run by hand (the default takes several minutes and needs ~4 GB free in bench/output/):

    .venv/bin/python bench/generations.py [--size-gb 1.0] [--generations 20] [--churn 0.01]

Measures, in one run on the same database with a writer process committing every 10 ms:
  (a) vs (b), how to read the pages: a read transaction reading the database file's pages
      directly (after a checkpoint, the only case where that is consistent) and hashing them,
      against a one-step backup-API copy to a private file that is then hashed;
  the whole-file zstd backup (time, size) and the restore-side rebuild of it;
  a first generation, then --generations generations each after --churn of the rows changed
      (in two halves: one before a control window, one right before the generation):
  stored bytes and time per extra generation, as ratios of the whole-file backup's;
  restic on the same consistent copies, when it is installed (bytes its repository grows);
  the writer's commit latency p99 while the extra generations run against the writer alone (the
      writer is its own process, as the app is: a thread in this one would measure our GIL, not the
      backup), two ways: control windows, each after the same churn as a generation and as long as
      the one before it (the A/B comparison: the target's), and quiet windows with no churn before
      them (before the backups, after them, and right after each extra generation for as long as it
      took, up to 5 s), so the machine's load of the moment is in every one;
  CPU seconds (getrusage of this process and its children) and bytes written to disk
      (/proc/self/io) per extra generation, and the figures per day of a generation every 10 minutes;
  the rebuild of the newest generation against the decompress + check of the whole-file backup.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
from _common import bench_module  # noqa: E402

bench_backup = bench_module("backup")

from railguard.backup import list_backups, materialize, take_backup  # noqa: E402
from railguard.backup.snapshot import take_snapshot  # noqa: E402
from railguard.config import BackupSettings  # noqa: E402
from railguard.pages.rebuild import rebuild_generation  # noqa: E402
from railguard.pages.writer import take_generation  # noqa: E402

OUTPUT = HERE / "output" / "generations"
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
PER_DAY = 144  # one generation every 10 minutes
IDLE_SECONDS = 5  # the writer alone: before the backups, after them, and at most this after each generation

_WRITER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
connection.execute("CREATE TABLE IF NOT EXISTS pings (id INTEGER PRIMARY KEY, at REAL)")
while True:
    started = time.monotonic()
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO pings(at) VALUES (?)", (started,))
        connection.execute("COMMIT")
        print(started, time.monotonic() - started, flush=True)
    except sqlite3.Error:
        print(started, "failed", flush=True)
    time.sleep(0.01)
"""


class ProcessWriter:
    """The app: another process committing a small transaction every 10 ms; each commit's latency
    by its start (CLOCK_MONOTONIC is one clock for every process on Linux)."""

    def __init__(self, database: Path) -> None:
        self.child = subprocess.Popen([sys.executable, "-c", _WRITER, str(database)], stdout=subprocess.PIPE,
                                      text=True)
        self.commits: list[tuple[float, float | None]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.child.stdout is not None
        for line in self.child.stdout:
            started, latency = line.split()
            self.commits.append((float(started), None if latency == "failed" else float(latency)))

    def percentiles(self, windows: list[tuple[float, float]]) -> tuple[float, float, int, int]:
        """p50 and p99 in ms of the commits started inside ``windows``; how many, how many failed."""
        inside = [latency for started, latency in list(self.commits)
                  if any(start <= started <= end for start, end in windows)]
        ordered = sorted(latency for latency in inside if latency is not None)
        p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
        return ordered[len(ordered) // 2] * 1000, p99 * 1000, len(inside), inside.count(None)

    def stop(self) -> None:
        self.child.terminate()
        self.child.wait(timeout=30)
        self.reader.join(timeout=30)


class Cost:
    """CPU seconds (this process and its waited-for children) and bytes written to disk by a block."""

    def __enter__(self) -> Cost:
        self.started = time.monotonic()
        self.cpu0, self.io0 = _cpu(), _written()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ended = time.monotonic()
        self.seconds = self.ended - self.started
        self.cpu = _cpu() - self.cpu0
        self.written = _written() - self.io0


def _cpu() -> float:
    return sum(usage.ru_utime + usage.ru_stime
               for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def _written() -> int:
    """Bytes this process sent to the storage layer: write_bytes less the writes cancelled by
    truncating or deleting a file before they reached the disk (the work copies)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])


def directory_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def read_directly(database: Path, page_size: int) -> float:
    """(a): checkpoint, then hash the file's pages while a read transaction is open."""
    started = time.perf_counter()
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
    connection.execute("BEGIN")
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    with database.open("rb") as handle:
        while page := handle.read(page_size):
            hashlib.sha256(page).digest()
    connection.execute("COMMIT")
    connection.close()
    return time.perf_counter() - started


def copy_then_hash(database: Path, scratch: Path, page_size: int) -> float:
    """(b): the one-step backup-API copy railguard takes, then hash the copy's pages."""
    target = scratch / "copy.sqlite3"
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    take_snapshot(database, target, method="backup-api", busy_timeout=30)
    with target.open("rb") as handle:
        while page := handle.read(page_size):
            hashlib.sha256(page).digest()
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def changed_rows(database: Path, fraction: float, rng: random.Random) -> list[int]:
    """The ids of ``fraction`` of the rows, picked at random: what the next churn changes."""
    connection = sqlite3.connect(database, timeout=30)
    try:
        highest = connection.execute("SELECT max(id) FROM tasks").fetchone()[0]
    finally:
        connection.close()
    return rng.sample(range(1, highest + 1), max(1, int(highest * fraction)))


def churn(database: Path, ids: list[int]) -> None:
    """Change the rows ``ids``, then checkpoint the WAL.

    The churn stands for the app's writes between two generations (ten minutes of them), done
    here in a few big transactions right before the next generation. Their WAL would have been
    checkpointed by the app's own autocheckpoints over those minutes; left in place, the
    writer's next commit checkpoints ~1,600 pages (30-40 ms, measured) just as the generation
    starts, and the generation would be charged with the churn's cost.
    """
    connection = sqlite3.connect(database, timeout=30, isolation_level=None)
    for start in range(0, len(ids), 2000):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("UPDATE tasks SET done = 1 - done, title = title || '!' WHERE id = ?",
                               [(row,) for row in ids[start:start + 2000]])
        connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
    connection.close()


def halves(ids: list[int]) -> tuple[list[int], list[int]]:
    return ids[:len(ids) // 2], ids[len(ids) // 2:]


def restic_growth(copy_from: Path, repository: Path, workdir: Path) -> int | None:
    """Bytes a restic repository grows by when backing up a consistent copy of the database."""
    if shutil.which("restic") is None:
        return None
    env = {**os.environ, "RESTIC_PASSWORD": "bench-only", "RESTIC_REPOSITORY": str(repository)}
    if not repository.exists():
        subprocess.run(["restic", "init", "-q"], env=env, check=True, capture_output=True)
    target = workdir / "tasks.db"
    target.unlink(missing_ok=True)
    take_snapshot(copy_from, target, method="backup-api", busy_timeout=30)
    before = directory_bytes(repository)
    subprocess.run(["restic", "backup", "-q", str(target)], env=env, check=True, capture_output=True)
    return directory_bytes(repository) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--churn", type=float, default=0.01, help="fraction of rows changed before each generation")
    parser.add_argument("--keep", action="store_true", help="keep bench/output/generations afterwards")
    args = parser.parse_args()

    OUTPUT.mkdir(parents=True, exist_ok=True)
    database = HERE / "output" / f"generations-{args.size_gb:g}gb.db"
    bench_backup.build_database(database, args.size_gb)
    for stale in ("file", "pages", "restic", "scratch"):
        bench_backup.drop(OUTPUT / stale)
    scratch = OUTPUT / "scratch"
    scratch.mkdir()
    size = database.stat().st_size
    page_size = sqlite3.connect(database).execute("PRAGMA page_size").fetchone()[0]
    print(f"database {size / 1e6:.0f} MB, page size {page_size}; {args.generations} generations at "
          f"{args.churn:.1%} churn")

    direct, copied = read_directly(database, page_size), copy_then_hash(database, scratch, page_size)
    print(f"(a) read transaction + hash the file's pages: {direct:.2f} s; (b) backup-API copy + hash: "
          f"{copied:.2f} s ({copied / direct:.2f}x (a))")

    writer = ProcessWriter(database)
    time.sleep(0.5)  # the writer's first commits (it creates its table)
    idle_windows = [(time.monotonic(), time.monotonic() + IDLE_SECONDS)]
    time.sleep(IDLE_SECONDS)

    file_settings = BackupSettings(directory=OUTPUT / "file", prune=False)
    with Cost() as file_cost:
        whole = take_backup(database, file_settings, now=T0)
    file_seconds = file_cost.seconds
    file_bytes = whole.manifest.size_stored
    print(f"whole-file zstd backup: {file_bytes / 1e6:.1f} MB in {file_seconds:.1f} s, {file_cost.cpu:.1f} CPU s, "
          f"{file_cost.written / 1e6:.0f} MB written to disk")

    pages_settings = BackupSettings(directory=OUTPUT / "pages", prune=False, kind="pages")
    with Cost() as first_cost:
        first = take_generation(database, pages_settings, now=T0 + timedelta(minutes=1))
    print(f"first generation: {first.manifest.new_bytes / 1e6:.1f} MB in {first_cost.seconds:.1f} s, "
          f"{first_cost.cpu:.1f} CPU s; durations {first.manifest.durations}")
    restic_first = restic_growth(database, OUTPUT / "restic", scratch)
    rng = random.Random(11)
    extra_bytes, costs, restic_bytes = [], [], []
    # Each generation's churn in two halves: the first before a control window (the writer alone
    # as long as the generation before took), the second right before the generation. Both
    # windows follow the same app writes, so the generation is compared with no generation,
    # not with a quieter moment; every generation still holds --churn of the rows changed.
    control_windows = []
    before_control, before_generation = halves(changed_rows(database, args.churn, rng))
    churn(database, before_control)
    for number in range(args.generations):
        churn(database, before_generation)
        with Cost() as cost:
            result = take_generation(database, pages_settings, now=T0 + timedelta(minutes=2 + number))
        costs.append(cost)
        # The writer alone right after, as long as the generation took (up to IDLE_SECONDS): idle
        # measured under the machine's load of the moment, not only before and after it all.
        quiet = min(cost.seconds, IDLE_SECONDS)
        idle_windows.append((time.monotonic(), time.monotonic() + quiet))
        time.sleep(quiet)
        extra_bytes.append(result.manifest.new_bytes)
        grown = restic_growth(database, OUTPUT / "restic", scratch)
        if grown is not None:
            restic_bytes.append(grown)
            os.sync()  # restic's writes reach the disk now, not in the control window
        before_control, before_generation = halves(changed_rows(database, args.churn, rng))
        churn(database, before_control)
        control_windows.append((time.monotonic(), time.monotonic() + cost.seconds))
        time.sleep(cost.seconds)
    during = writer.percentiles([(cost.started, cost.ended) for cost in costs])
    idle_windows.append((time.monotonic(), time.monotonic() + IDLE_SECONDS))  # the machine's load moves: twice
    time.sleep(IDLE_SECONDS)
    idle = writer.percentiles(idle_windows)
    control = writer.percentiles(control_windows)
    writer.stop()

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    mean_bytes = mean(extra_bytes)
    mean_seconds = mean([cost.seconds for cost in costs])
    mean_cpu = mean([cost.cpu for cost in costs])
    mean_written = mean([cost.written for cost in costs])
    print(f"extra generation: {mean_bytes / 1e6:.2f} MB stored = {mean_bytes / file_bytes:.1%} of a whole-file "
          f"backup (target <= 15%); {mean_seconds:.2f} s = {mean_seconds / file_seconds:.2f}x (target <= 0.5x); "
          f"durations of the last {result.manifest.durations}")
    print(f"extra generation: {mean_cpu:.2f} CPU s ({mean_cpu / file_cost.cpu:.2f}x a whole-file backup's), "
          f"{mean_written / 1e6:.1f} MB written to disk ({mean_written / max(file_cost.written, 1):.2f}x)")
    if restic_bytes:
        mean_restic = mean(restic_bytes)
        print(f"restic, same copies: first {restic_first / 1e6:.1f} MB, then {mean_restic / 1e6:.2f} MB per "
              f"snapshot = {mean_restic / file_bytes:.1%} of a whole-file backup")
    else:
        print("restic: not installed, not measured")
    print(f"writer commit p50/p99: during the extra generations {during[0]:.1f}/{during[1]:.1f} ms ({during[2]} "
          f"commits); control windows (same churn, no generation) {control[0]:.1f}/{control[1]:.1f} ms "
          f"({control[2]} commits) = {during[1] / control[1]:.2f}x (target <= 1.5x); quiet windows (no churn "
          f"before) {idle[0]:.1f}/{idle[1]:.1f} ms ({idle[2]} commits) = {during[1] / idle[1]:.2f}x; failed commits "
          f"{idle[3] + control[3] + during[3]}")
    stored = directory_bytes(OUTPUT / "pages")
    print(f"store after {args.generations + 1} generations: {stored / 1e6:.1f} MB "
          f"(whole-file backups: {(args.generations + 1) * file_bytes / 1e6:.1f} MB)")
    print(f"per day at one generation every 10 minutes (x{PER_DAY}): {mean_cpu * PER_DAY / 60:.1f} CPU minutes, "
          f"{mean_written * PER_DAY / 1e9:.2f} GB written to disk, {mean_bytes * PER_DAY / 1e9:.2f} GB of new packs "
          f"and page lists added to the store")
    print(f"retention frees a pruned generation's pages once no kept one has them: keeping every generation of "
          f"the last day (keep_within = \"1d\"), the store is at most a whole generation "
          f"({first.manifest.new_bytes / 1e6:.0f} MB) plus a day of new bytes = "
          f"{(first.manifest.new_bytes + mean_bytes * PER_DAY) / 1e9:.2f} GB; the same day of whole-file backups "
          f"would be {file_bytes * PER_DAY / 1e9:.2f} GB")

    record = list_backups(OUTPUT / "file")[-1]
    started = time.perf_counter()
    with materialize(record, scratch):
        pass
    file_restore = time.perf_counter() - started
    started = time.perf_counter()
    with rebuild_generation(result.path.parent, result.manifest, scratch):
        pass
    pages_restore = time.perf_counter() - started
    print(f"restore side (verified copy ready to rename): whole-file {file_restore:.1f} s, newest generation "
          f"{pages_restore:.1f} s ({pages_restore / file_restore:.2f}x, target <= 1.5x)")
    if not args.keep:
        for stale in ("file", "pages", "restic", "scratch"):
            bench_backup.drop(OUTPUT / stale)


if __name__ == "__main__":
    main()
