"""Run the backup's heavy work at background priority, so the app it copies comes first.

On Linux a thread can ask for ``SCHED_IDLE``: it then gets a CPU only when nothing else wants
one. A backup on a 2-core machine keeps both cores busy (copy, then integrity_check and
compression side by side); at normal priority the app's threads wait for a time slice behind
it, which bench/backup.py measured as a steady ~6 ms on every commit. At idle priority the
app's commits preempt the backup at once, and on an idle machine the backup is as fast as
before. Elsewhere (or if the kernel refuses) this does nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


@contextlib.contextmanager
def background_priority(enabled: bool = True) -> Iterator[None]:
    """Lower the calling thread to SCHED_IDLE for the block, then put its policy back."""
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
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, previous_policy, previous_param)


def run_in_background(function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Call ``function`` in the current (worker) thread at background priority."""
    with background_priority():
        return function(*args, **kwargs)
