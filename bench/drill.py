"""What a restore drill costs over doing its parts by hand.

Baseline, measured in the same run: verifying the backup (``materialize``: sha256,
decompress, integrity_check) plus starting the example app on a copy and polling /health until
200, then SIGTERM: the least a by-hand drill does. Against it: ``run_drill`` end to end (the
same, plus metrics, an SQL assertion, the watchdog, process-group stop, drill.log).

    .venv/bin/python bench/drill.py [--rows 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from _common import EXAMPLE_APP as APP
from _common import Timings, tests_module

from railguard.backup import take_backup
from railguard.config import AppSettings, BackupSettings, DrillAssertion, DrillSettings, Settings
from railguard.drill import run_drill
from railguard.drill.boot import free_port

create_tasks_database = tests_module("conftest.py", "railguard_tests_conftest").create_tasks_database


def by_hand(record, scratch: Path) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    copy_dir = scratch / "copy"
    copy_dir.mkdir()
    from railguard.backup.verify import materialize

    with materialize(record, scratch) as verified:
        os.rename(verified.path, copy_dir / "tasks.db")
    port = free_port()
    app = subprocess.Popen([sys.executable, str(APP)], env={"PATH": os.environ["PATH"], "PORT": str(port),
                                                            "DB_PATH": str(copy_dir / "tasks.db")},
                           stderr=subprocess.DEVNULL)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    app.send_signal(signal.SIGTERM)
    app.wait()
    shutil.rmtree(copy_dir)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="railguard-bench-drill-") as work:
        root = Path(work)
        (root / "data").mkdir()
        database = create_tasks_database(root / "data" / "tasks.db", rows=args.rows)
        backup_settings = BackupSettings(directory=root / "backups", prune=False)
        result = take_backup(database, backup_settings, now=datetime.now(timezone.utc))
        from railguard.backup import resolve_backup

        record = resolve_backup(root / "backups", "tasks", "latest")
        drill = DrillSettings(command=[sys.executable, str(APP)], env={"DB_PATH": "{db}"},
                              assertions=[DrillAssertion(sql="SELECT count(*) FROM tasks", expect="> 0")],
                              scratch_dir=root)
        app = AppSettings(database=database, backup=backup_settings, drill=drill)
        settings = Settings(apps={"tasks": app}, state_dir=root / "state")
        hand, drilled = [], Timings()
        for _ in range(args.runs):
            scratch = Path(tempfile.mkdtemp(dir=root))
            hand.append(by_hand(record, scratch))
            shutil.rmtree(scratch)
            report = run_drill(settings, "tasks", app, now=datetime.now(timezone.utc), env={"PATH": os.environ["PATH"]})
            assert report.passed, report.reason
            drilled.add(report)
        base = statistics.median(hand)
        print(f"database {result.manifest.size_raw / 1e6:.1f} MB raw, {result.manifest.size_stored / 1e6:.1f} MB stored, "
              f"{args.runs} runs, medians")
        print(f"by hand (verify + boot to /health 200 + SIGTERM): {base:.2f} s  = 1.00")
        print(f"railguard drill, end to end:                      {drilled.median:.2f} s  = "
              f"{drilled.median / base:.2f}")
        print("\n".join(drilled.step_lines(base)))


if __name__ == "__main__":
    main()
