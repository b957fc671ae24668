"""Benchmark: page-level generations (docs/pages.md) against whole-file backups, on a ~1 GB database.

Run by hand (the default takes several minutes and needs ~4 GB free in bench/output/):

    .venv/bin/python bench/generations.py [--size-gb 1.0] [--generations 20] [--churn 0.01]

Measures, in one run on the same database with a writer committing every 10 ms:
  (a) vs (b), how to read the pages: a read transaction reading the database file's pages
      directly (after a checkpoint, the only case where that is consistent) and hashing them,
      against a one-step backup-API copy to a private file that is then hashed;
  the whole-file zstd backup (time, size) and the restore-side rebuild of it;
  a first generation, then --generations generations each after --churn of the rows changed:
  stored bytes and time per extra generation, as ratios of the whole-file backup's;
  restic on the same consistent copies, when it is installed (bytes its repository grows);
  the writer's commit latency p99 idle vs during the generations;
  the rebuild of the newest generation against the decompress + check of the whole-file backup.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
_spec = importlib.util.spec_from_file_location("bench_backup", HERE / "backup.py")
assert _spec and _spec.loader
bench_backup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_backup)

from railguard.backup import list_backups, materialize, take_backup  # noqa: E402
from railguard.backup.snapshot import take_snapshot  # noqa: E402
from railguard.config import BackupSettings  # noqa: E402
from railguard.pages.rebuild import rebuild_generation  # noqa: E402
from railguard.pages.writer import take_generation  # noqa: E402

OUTPUT = HERE / "output" / "generations"
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


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


def churn(database: Path, fraction: float, rng: random.Random) -> None:
    connection = sqlite3.connect(database, timeout=30, isolation_level=None)
    highest = connection.execute("SELECT max(id) FROM tasks").fetchone()[0]
    changed = max(1, int(highest * fraction))
    ids = rng.sample(range(1, highest + 1), changed)
    for start in range(0, changed, 2000):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("UPDATE tasks SET done = 1 - done, title = title || '!' WHERE id = ?",
                               [(row,) for row in ids[start:start + 2000]])
        connection.execute("COMMIT")
    connection.close()


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

    writer = bench_backup.LatencyWriter(database)
    writer.start()
    time.sleep(3)
    idle = writer.percentiles()
    writer.latencies.clear()

    file_settings = BackupSettings(directory=OUTPUT / "file", prune=False)
    started = time.perf_counter()
    whole = take_backup(database, file_settings, now=T0)
    file_seconds = time.perf_counter() - started
    file_bytes = whole.manifest.size_stored
    print(f"whole-file zstd backup: {file_bytes / 1e6:.1f} MB in {file_seconds:.1f} s")

    pages_settings = BackupSettings(directory=OUTPUT / "pages", prune=False, kind="pages")
    started = time.perf_counter()
    first = take_generation(database, pages_settings, now=T0 + timedelta(minutes=1))
    print(f"first generation: {first.manifest.new_bytes / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")
    restic_first = restic_growth(database, OUTPUT / "restic", scratch)
    rng = random.Random(11)
    extra_bytes, extra_seconds, restic_bytes = [], [], []
    for number in range(args.generations):
        churn(database, args.churn, rng)
        started = time.perf_counter()
        result = take_generation(database, pages_settings, now=T0 + timedelta(minutes=2 + number))
        extra_seconds.append(time.perf_counter() - started)
        extra_bytes.append(result.manifest.new_bytes)
        grown = restic_growth(database, OUTPUT / "restic", scratch)
        if grown is not None:
            restic_bytes.append(grown)
    during = writer.percentiles()
    writer.stop_event.set()
    writer.join()

    mean_bytes = sum(extra_bytes) / len(extra_bytes)
    mean_seconds = sum(extra_seconds) / len(extra_seconds)
    print(f"extra generation: {mean_bytes / 1e6:.2f} MB stored = {mean_bytes / file_bytes:.1%} of a whole-file "
          f"backup (target <= 15%); {mean_seconds:.1f} s = {mean_seconds / file_seconds:.2f}x (target <= 0.5x)")
    if restic_bytes:
        mean_restic = sum(restic_bytes) / len(restic_bytes)
        print(f"restic, same copies: first {restic_first / 1e6:.1f} MB, then {mean_restic / 1e6:.2f} MB per "
              f"snapshot = {mean_restic / file_bytes:.1%} of a whole-file backup")
    else:
        print("restic: not installed, not measured")
    print(f"writer commit p50/p99: idle {idle[0]:.1f}/{idle[1]:.1f} ms, during {during[0]:.1f}/{during[1]:.1f} ms "
          f"({during[1] / idle[1]:.2f}x, target <= 1.5x); failed commits {writer.failures}")
    print(f"store after {args.generations + 1} generations: {directory_bytes(OUTPUT / 'pages') / 1e6:.1f} MB "
          f"(whole-file backups: {(args.generations + 1) * file_bytes / 1e6:.1f} MB)")

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
