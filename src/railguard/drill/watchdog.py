"""Kills a drilled app when railguard dies before stopping it (see process.py).

Standard library only, run by path (``python -I -S watchdog.py``). It reads commands from its
stdin, one per line: ``grace SECONDS``, ``group PGID``, ``container NAME``, ``workspace DIR``,
``done``. EOF without ``done`` means the railguard process holding the other end of the pipe is
gone (the kernel closes its descriptors however it died): ``docker rm -f`` the container,
SIGTERM the group and SIGKILL it after the grace period, then remove the drill's directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

#: Only a drill's own temporary directory is ever removed (a guard against a garbled line).
WORKSPACE_PREFIX = "railguard-drill-"


def group_alive(pgid: int) -> bool:
    """Whether anything still runs in process group ``pgid`` (one we may not signal counts).
    Also used by :mod:`railguard.drill.process`: this module is standard library only, so both
    the watchdog run by path and railguard itself can import it."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int, grace: float) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docker", default="docker")
    args = parser.parse_args()
    # Its own session already keeps terminal signals away; a stray SIGINT/SIGHUP must not
    # end the one process whose job is to outlive railguard.
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    groups: list[int] = []
    containers: list[str] = []
    workspaces: list[str] = []
    grace = 10.0
    for raw in sys.stdin.buffer:
        command, _, value = raw.decode("utf-8", "replace").strip().partition(" ")
        if command == "done":
            return 0
        if command == "grace":
            grace = float(value)
        elif command == "group":
            groups.append(int(value))
        elif command == "container":
            containers.append(value)
        elif command == "workspace" and os.path.basename(value).startswith(WORKSPACE_PREFIX):
            workspaces.append(value)
    # EOF without "done": railguard is gone.
    for name in containers:
        subprocess.run([args.docker, "rm", "-f", name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, check=False)
    for pgid in groups:
        _kill_group(pgid, grace)
    # Only once nothing runs in it any more: the copy is not left behind on disk either.
    for directory in workspaces:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
