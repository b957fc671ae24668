"""A backup's work yields to the app: its CPU (SCHED_IDLE) and its disk writes (paced_write)."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from railguard.backup import priority
from railguard.backup.priority import background_priority, paced_write

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE and sync_file_range are Linux's")


@linux_only
def test_background_priority_is_idle_inside_the_block_and_normal_after() -> None:
    before = os.sched_getscheduler(0)
    with background_priority():
        assert os.sched_getscheduler(0) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == before
    with background_priority(enabled=False):
        assert os.sched_getscheduler(0) == before


@linux_only
def test_at_most_gives_the_policy_back_while_the_block_still_runs() -> None:
    before = os.sched_getscheduler(0)
    with background_priority(at_most=0.0):
        deadline = time.monotonic() + 60
        while os.sched_getscheduler(0) != before and time.monotonic() < deadline:
            time.sleep(0.01)  # the timer thread puts it back; wait for that, not for a guessed time
        assert os.sched_getscheduler(0) == before
    assert os.sched_getscheduler(0) == before


@linux_only
def test_a_block_shorter_than_at_most_stays_idle_and_leaves_no_timer() -> None:
    before, threads = os.sched_getscheduler(0), threading.active_count()
    with background_priority(at_most=3600):
        assert os.sched_getscheduler(0) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == before
    assert threading.active_count() == threads


class _Clock:
    """priority's view of time: monotonic() stands still, sleep() is recorded."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return 100.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _paced(path: Path, data: bytes, *, before: bytes = b"", **pacing: int) -> bytes:
    """paced_write ``data`` into a new file at ``path`` after ``before``; what the file then holds."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, before)
        paced_write(fd, data, **pacing)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path.read_bytes()


def test_every_byte_lands_in_order_after_what_the_file_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(priority, "time", _Clock())
    data = os.urandom(5 * 65536 + 123)
    assert _paced(tmp_path / "pack", data, before=b"header", chunk=65536) == b"header" + data


def test_each_piece_is_on_the_disk_before_the_next_is_written(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def sync_range(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append((offset, length, os.fstat(fd).st_size, flags))
        return 0

    monkeypatch.setattr(priority, "time", _Clock())
    monkeypatch.setattr(priority, "_sync_range", sync_range)
    _paced(tmp_path / "pack", b"p" * (3 * 4096 + 1), before=b"x" * 10, chunk=4096)
    wait_write_wait = 1 | 2 | 4  # SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER
    # Each piece is asked out and waited for while the file ends with it: the next is not written yet.
    assert calls == [(10, 4096, 10 + 4096, wait_write_wait), (10 + 4096, 4096, 10 + 8192, wait_write_wait),
                     (10 + 8192, 4096, 10 + 12288, wait_write_wait), (10 + 12288, 1, 10 + 12289, wait_write_wait)]


def test_pieces_go_no_faster_than_the_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(priority, "time", clock)
    monkeypatch.setattr(priority, "_sync_range", lambda fd, offset, length, flags: 0)
    _paced(tmp_path / "pack", b"p" * 2500, chunk=1000, rate=10_000)
    # 1,000 bytes at 10,000 bytes/s is 0.1 s a piece; the clock stood still, so each piece waits it all.
    assert clock.slept == pytest.approx([0.1, 0.1, 0.05])


def test_a_file_that_cannot_sync_a_range_is_written_whole_all_the_same(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(fd: int, offset: int, length: int, flags: int) -> int:
        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(priority, "time", _Clock())
    monkeypatch.setattr(priority, "_sync_range", unsupported)
    data = os.urandom(10_000)
    assert _paced(tmp_path / "pack", data, chunk=4096) == data


def test_a_disk_error_while_syncing_a_piece_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fd: int, offset: int, length: int, flags: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(priority, "time", _Clock())
    monkeypatch.setattr(priority, "_sync_range", failing)
    with pytest.raises(OSError) as raised:
        _paced(tmp_path / "pack", b"p" * 10_000, chunk=4096)
    assert raised.value.errno == errno.EIO


def test_without_sync_file_range_it_is_one_plain_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(priority, "time", clock)
    monkeypatch.setattr(priority, "_sync_range", None)
    data = os.urandom(3 * 4096)
    assert _paced(tmp_path / "pack", data, chunk=4096) == data
    assert clock.slept == []  # nothing to pace against: the kernel writes it back as it likes


@linux_only
def test_the_real_sync_file_range_is_found_and_used(tmp_path: Path) -> None:
    assert priority._sync_range is not None
    data = os.urandom(3 * priority.PACED_CHUNK + 17)
    # No pause worth the name: the real call on a real file.
    assert _paced(tmp_path / "pack", data, rate=1 << 40) == data
