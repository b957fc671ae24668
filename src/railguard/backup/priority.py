"""Run the backup's heavy work at background priority, so the app it copies comes first.

On Linux a thread can ask for ``SCHED_IDLE``: it then gets a CPU only when nothing else wants
one. A backup on a 2-core machine keeps both cores busy (copy, then integrity_check and
compression side by side); at normal priority the app's threads wait for a time slice behind
it, which bench/backup.py measured as a steady ~6 ms on every commit. At idle priority the
app's commits preempt the backup at once, and on an idle machine the backup is as fast as
before. Elsewhere (or if the kernel refuses) this does nothing.

The disk is shared the same way, but no priority reaches it here: the app's commit waits for
its WAL's fsync, and the disk serves that behind whatever else is queued (an I/O priority
class changed nothing on the benchmark's virtio disk). So :func:`paced_write` keeps what a
backup queues small instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from railguard.durable import libc_function

_P = ParamSpec("_P")
_T = TypeVar("_T")


@contextlib.contextmanager
def background_priority(enabled: bool = True, *, at_most: float | None = None) -> Iterator[None]:
    """Lower the calling thread to SCHED_IDLE for the block, then put its policy back.

    With ``at_most`` (seconds), the thread gets its policy back once the block has lasted that
    long, even while it is still inside it: for work that holds something the app needs (a read
    transaction on its database keeps its WAL from being reset), so a busy machine, where an
    idle-priority thread barely runs, never makes it wait long.
    """
    if not enabled or not hasattr(os, "SCHED_IDLE"):
        yield
        return
    try:
        previous_policy = os.sched_getscheduler(0)
        previous_param = os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        yield
        return
    thread = threading.get_native_id()

    def put_back() -> None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(thread, previous_policy, previous_param)

    timer = threading.Timer(at_most, put_back) if at_most is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
            timer.join()  # it either never ran or has finished: it cannot act on this thread's next work
        put_back()


def run_in_background(function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Call ``function`` in the current (worker) thread at background priority."""
    with background_priority():
        return function(*args, **kwargs)


#: How fast :func:`paced_write` lets a backup's durable writes reach the disk, and in what pieces.
PACED_BYTES_PER_SECOND = 16 * 1024 * 1024
PACED_CHUNK = 256 * 1024
#: sync_file_range's SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER: start the range's writeback, wait for it.
_WRITE_AND_WAIT = 1 | 2 | 4


def _sync_file_range() -> Callable[..., int] | None:
    function = libc_function("sync_file_range")
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]  # type: ignore[attr-defined]
    return function


_sync_range = _sync_file_range()


def paced_write(fd: int, data: bytes, *, rate: int = PACED_BYTES_PER_SECOND, chunk: int = PACED_CHUNK) -> None:
    """Write ``data`` at ``fd``'s offset a piece at a time, each piece on the disk before the next.

    Why. The app commits with an fsync of its WAL, and the disk serves it behind whatever is
    queued there. A backup that writes a 10 MB pack and fsyncs it queues 10 MB at once: on the
    shared 2-core machine (bench/generations.py) each such fsync held the app's commits for
    10 to 90 ms, and their p50 rose from 1 ms to 9 ms while packs were written back to back.
    So, as PostgreSQL's ``checkpoint_flush_after`` does, each piece's writeback is started and
    waited for (``sync_file_range``) before the next is written, and the pieces go at most at
    ``rate``: the app's fsync never waits behind more than one piece of ours, and between
    pieces the disk is the app's. Measured there: pieces of 64 to 256 KiB at 10 to 20 MB/s kept
    the app's commit p99 within 1.0 to 1.2x of idle; written as fast as the disk took them,
    pieces alone changed nothing (docs/pages.md, "What keeps the app's commits fast").

    The caller still fsyncs (the file's metadata and the disk's cache). Where
    ``sync_file_range`` does not exist this is a plain write; where the file system refuses it,
    the rest is written at once.
    """
    view = memoryview(data)
    if _sync_range is None:
        _write_all(fd, view)
        return
    offset = os.lseek(fd, 0, os.SEEK_CUR)
    for start in range(0, len(view), chunk):
        began = time.monotonic()
        piece = view[start:start + chunk]
        _write_all(fd, piece)
        if _sync_range(fd, offset + start, len(piece), _WRITE_AND_WAIT) != 0:
            error = ctypes.get_errno()
            if error not in (errno.ENOSYS, errno.EINVAL):
                raise OSError(error, f"sync_file_range: {os.strerror(error)}")
            _write_all(fd, view[start + chunk:])  # a file system that cannot: the caller's fsync does it all
            return
        time.sleep(max(0.0, len(piece) / rate - (time.monotonic() - began)))


def _write_all(fd: int, data: memoryview) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
