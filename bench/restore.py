"""Benchmark: railguard restore against the plan's manual restore, on one database.

Run by hand (a ~0.5 GB database by default; needs ~4x that free in bench/output/):

    .venv/bin/python bench/restore.py [--size-gb 0.5]

Measures, in one run, restoring the same zstd backup over a WAL database:
  (a) the baseline, the plan's manual step: zstd -d the backup, mv it over the database
      (no verification, no safety copy, nothing about the -wal);
  (b) railguard restore with integrity_check (the default), and with quick_check;
and prints each as a ratio against (a), with railguard's own share of each step.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"
sys.path.insert(0, str(HERE))

from backup import build_database  # noqa: E402  (the same tasks-like database as bench/backup.py)

from railguard.backup import list_backups, take_backup  # noqa: E402
from railguard.config import BackupSettings  # noqa: E402
from railguard.restore import restore_backup  # noqa: E402


def fresh_target(source: Path, work: Path) -> Path:
    """A copy of the database to restore over (restores must not eat the cached source)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    target = work / "tasks.db"
    shutil.copyfile(source, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=0.5)
    args = parser.parse_args()
    OUTPUT.mkdir(exist_ok=True)
    source = OUTPUT / f"restore-source-{args.size_gb:g}gb.db"
    build_database(source, args.size_gb)
    backups = OUTPUT / "restore-backups"
    shutil.rmtree(backups, ignore_errors=True)
    take_backup(source, BackupSettings(directory=backups), now=datetime.now(timezone.utc))
    record = list_backups(backups)[-1]
    assert record.data_path is not None and record.manifest is not None
    size = record.manifest.size_raw
    print(f"database {size / 1e9:.2f} GB, backup {record.data_path.stat().st_size / 1e9:.2f} GB (zstd)")
    work = OUTPUT / "restore-work"

    target = fresh_target(source, work)
    started = time.monotonic()
    subprocess.run(["zstd", "-q", "-d", str(record.data_path), "-o", str(work / "restored.tmp")], check=True)
    (work / "restored.tmp").replace(target)
    baseline = time.monotonic() - started
    print(f"(a) zstd -d + mv (the plan's manual step):   {baseline:6.1f} s   1.00x")

    for check in ("integrity", "quick"):
        target = fresh_target(source, work)
        started = time.monotonic()
        result = restore_backup(record, target, now=datetime.now(timezone.utc), check=check)
        seconds = time.monotonic() - started
        assert result.safety_copy is not None
        print(f"(b) railguard restore, {check + '_check':<16}  {seconds:6.1f} s   {seconds / baseline:4.2f}x"
              "   (verify + check + safety copy + swap)")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(backups, ignore_errors=True)


if __name__ == "__main__":
    main()
