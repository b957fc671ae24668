"""Backups of a database that a separate process keeps writing to, and backups killed mid-way."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from railguard.backup import list_backups, take_backup
from railguard.backup.verify import check_database, verify_backup
from railguard.config import BackupSettings


def snapshot_state(database: Path) -> tuple[int, list[int]]:
    connection = sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True)
    try:
        counter = connection.execute("SELECT n FROM counter").fetchone()[0]
        seqs = [row[0] for row in connection.execute("SELECT seq FROM ledger ORDER BY seq")]
        return counter, seqs
    finally:
        connection.close()


def _wait_for_commit_after(writer, count: int, timeout: float = 60) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (committed := writer.committed_now()) <= count:
        assert writer.process.poll() is None, writer.process.communicate()
        assert time.monotonic() < deadline, f"the writer committed nothing past {count} in {timeout}s"
        time.sleep(0.01)
    return committed


@pytest.mark.parametrize("method", ["backup-api", "vacuum-into"])
def test_backup_survives_concurrent_writers(writer, tmp_path: Path, method: str):
    settings = BackupSettings(directory=tmp_path / "backups", method=method, compression="none")
    seen = []
    for round_number in range(6):
        # Let the writer get ahead between backups: wait for a commit the last backup cannot
        # hold (a fixed 0.15 s sleep let a starved writer commit nothing on a loaded machine).
        committed_before = _wait_for_commit_after(writer, seen[-1] if seen else 0)
        result = take_backup(writer.database, settings, now=datetime.now(timezone.utc))
        committed_after = writer.committed_now()
        assert check_database(result.path).ok
        counter, seqs = snapshot_state(result.path)
        # A consistent snapshot: exactly the transactions 1..counter, none half-applied.
        assert seqs == list(range(1, counter + 1))
        assert committed_before <= counter <= committed_after
        seen.append(counter)
    committed, errors, stderr = writer.stop()
    assert errors == 0, stderr
    assert seen == sorted(seen) and seen[-1] > seen[0] > 0
    assert seen[-1] <= committed


def test_kill_9_at_random_moments_never_leaves_a_bad_final_file(tmp_path: Path, fill_with_random_rows):
    database = tmp_path / "big.db"
    fill_with_random_rows(database, megabytes=24)
    directory = tmp_path / "backups"
    command = [sys.executable, "-m", "railguard", "backup", "--db", str(database), "--dir", str(directory)]
    rng = random.Random(20261127)
    # Calibrate: how long does an undisturbed run take here?
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True)
    full_run = time.monotonic() - started

    trials = 24
    for _ in range(trials):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, full_run))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        for record in list_backups(directory, "big"):
            # Any file with a final name and a manifest is complete and verifies; a data file
            # without its manifest (killed between the two renames) is never called good.
            if record.is_good:
                verify_backup(record, tmp_path)
            else:
                assert record.status == "incomplete: no manifest"
    after = subprocess.run(command, capture_output=True, text=True)
    assert after.returncode == 0, after.stderr
    leftovers = [p.name for p in directory.iterdir() if ".tmp-" in p.name]
    assert leftovers == []
    assert list_backups(directory, "big")[-1].is_good
