"""Named points where a test can kill the process (``kill -9``) to prove crash safety.

``RAILGUARD_PAGES_KILL_AT=<point>`` in the environment makes the process SIGKILL itself when it
reaches that point: no ``finally``, no ``atexit``, exactly what a power cut or the OOM killer
does. ``<point>:<n>`` kills at the n-th time the point is reached. Unset, a point costs one
dictionary lookup. The points are listed in docs/pages.md.
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT = "RAILGUARD_PAGES_KILL_AT"
_reached: dict[str, int] = {}


def fault_point(name: str) -> None:
    wanted = os.environ.get(ENVIRONMENT)
    if not wanted:
        return
    point, _, times = wanted.partition(":")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(times or 1):
        os.kill(os.getpid(), signal.SIGKILL)
