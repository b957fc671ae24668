"""The runbook's sandbox: a small production built from real parts (see sandbox.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.sandbox import Sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A production that has run for a while: the app serving, one verified backup copied to
    the destination, one passing drill."""
    box = Sandbox(tmp_path / "sandbox")
    try:
        box.start()
        for args in (("backup",), ("drill",)):
            result = box.railguard(*args)
            assert result.returncode == 0, result.stdout + result.stderr
        yield box
    finally:
        box.stop()
