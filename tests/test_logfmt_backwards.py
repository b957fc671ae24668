"""Reading a log from its end: the same lines as from the start, newest first, whatever the blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from railguard import logfmt
from railguard.logfmt import append_line, read_lines, read_lines_backwards


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
def test_backwards_is_the_log_reversed_whatever_the_block_size(tmp_path: Path, block: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfmt, "_BLOCK", block)
    path = tmp_path / "backup.log"
    for index in range(50):
        append_line(path, {"n": index, "error": "disk full: é" * (index % 3), "note": "a b\\nc"})
    with path.open("a") as handle:
        handle.write("\n\n")  # blank lines are no lines
    assert list(read_lines_backwards(path)) == list(reversed(read_lines(path)))


def test_a_last_line_without_its_newline_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "backup.log"
    path.write_text("n=1\nn=2")
    assert [line["n"] for line in read_lines_backwards(path)] == ["2", "1"]


def test_a_missing_log_has_no_lines(tmp_path: Path) -> None:
    assert list(read_lines_backwards(tmp_path / "none.log")) == []
