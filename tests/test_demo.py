"""The README's first command must keep working: run the demo and check what it shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from railguard.logfmt import read_lines

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


@pytest.mark.slow
def test_the_demo_runs_every_part_on_the_example_app(tmp_path: Path):
    out_dir = tmp_path / "demo"
    result = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=240,
                            env={**os.environ, "RAILGUARD_DEMO_OUTPUT": str(out_dir)})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # Verified backups of the live app, listed and verified again, locally and on the second disk.
    assert len(re.findall(r"^backup .*\.sqlite3\.zst \(.*integrity_check ok", out, re.MULTILINE)) == 3
    assert len(re.findall(r"^ok +tasks-\d{8}-\d{4}", out, re.MULTILINE)) == 6
    assert [line["result"] for line in read_lines(out_dir / "backups" / "backup.log")] == ["ok", "ok", "ok"]
    assert len(list((out_dir / "second-disk").rglob("*.sqlite3.zst"))) == 3
    # The prune dry run explains itself and removes nothing.
    assert re.search(r"^keep +tasks-\S+ .*daily #1, weekly #1$", out, re.MULTILINE)
    assert "nothing was removed" in out
    assert len(list((out_dir / "backups").glob("*.sqlite3.zst"))) == 3
    # The drill booted a second instance; the stock tool restores too.
    assert re.search(r"^drill PASSED: backup tasks-\S+ \(local\) booted the app", out, re.MULTILINE)
    restored = re.search(r"^restored copy: (\d+) tasks, integrity_check ok$", out, re.MULTILINE)
    assert restored and int(restored.group(1)) > 0
    # The hook let the passing push land and refused the failing one.
    assert "remote: railguard: passed: refs/heads/main" in out
    assert "! [remote rejected] main -> main (pre-receive hook declined)" in out
    assert "the failing commit never landed" in out
    # Smoke check and status.
    assert "smoke OK: tasks serves demo, new process, migrations ok" in out
    assert re.search(r"^all good$", out, re.MULTILINE)
    assert re.search(r"^the writer created \d+ tasks with 0 errors", out, re.MULTILINE)
