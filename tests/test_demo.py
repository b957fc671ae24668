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
def test_the_demo_backs_up_a_live_app_and_restores_with_stock_tools(tmp_path: Path):
    result = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=240,
                            env={**os.environ, "RAILGUARD_DEMO_OUTPUT": str(tmp_path / "demo")})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert len(re.findall(r"^backup .*\.sqlite3\.zst \(.*integrity_check ok", out, re.MULTILINE)) == 3
    assert len(re.findall(r"^ok +tasks-\d{8}-\d{4}", out, re.MULTILINE)) == 3
    restored = re.search(r"^restored copy: (\d+) tasks, integrity_check ok$", out, re.MULTILINE)
    assert restored and int(restored.group(1)) > 0
    assert re.search(r"^the writer created \d+ tasks with 0 errors", out, re.MULTILINE)
    lines = read_lines(tmp_path / "demo" / "backups" / "backup.log")
    assert [line["result"] for line in lines] == ["ok", "ok", "ok"]
