"""Starting the drilled app so that it can never outlive the drill.

Three layers, because each one alone has a gap:

1. The app runs in its own session and process group (``start_new_session``), so stopping it
   means signalling the whole group: a shell wrapper or ``bun`` that forks workers is stopped
   with everything it started, and Ctrl-C on railguard's terminal does not reach it directly.
2. On Linux the direct child gets ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills it
   when railguard dies, even by SIGKILL. PDEATHSIG fires when the *thread* that forked exits,
   so the spawn happens on the calling thread, which waits for the app until the drill ends.
3. A watchdog process (:mod:`railguard.drill.watchdog`) holds the read end of a pipe from
   railguard. When railguard dies, the kernel closes the write end; the watchdog reads EOF and
   kills the whole process group (PDEATHSIG only reaches the direct child, not its children),
   removes the Docker container (which the ``docker run`` client's death does not stop) and
   the drill's temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from railguard.drill.watchdog import group_alive
from railguard.durable import libc_function

PR_SET_PDEATHSIG = 1
WATCHDOG_SCRIPT = Path(__file__).with_name("watchdog.py")


# Looked up once in the parent: the child between fork and exec must not load libraries.
_PRCTL = libc_function("prctl")


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would ever signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | str | None, output: IO[bytes],
          stdin: int | IO[bytes] | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, dying with this process; stdout+stderr go to ``output``.

    Untrusted code to run as another account (the rehearsal of pushed code under ``user:NAME``)
    comes wrapped in :mod:`railguard.deploy.reaper`, which switches ids itself and sets the
    command's PR_SET_PDEATHSIG after the switch (the kernel clears it when the credentials
    change, kernel/cred.c, commit_creds)."""
    return subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=stdin, stdout=output,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent(os.getpid()))


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the group; False when nothing is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


@dataclass
class StopResult:
    exit_code: int | None
    #: True when the grace period ran out and the group got SIGKILL.
    killed: bool
    seconds: float


def stop_group(process: subprocess.Popen[bytes], grace: float, *, poll: float = 0.05) -> StopResult:
    """SIGTERM the process group, wait up to ``grace`` for it to empty, then SIGKILL it.

    The group, not only the leader: a leader that exits on SIGTERM may leave children behind,
    and they must go too. The leader is reaped here so no zombie is left either.
    """
    started = time.monotonic()
    pgid = process.pid  # start_new_session: the child leads its own group
    killed = False
    if signal_group(pgid, signal.SIGTERM):
        deadline = started + grace
        while time.monotonic() < deadline:
            process.poll()
            if not group_alive(pgid):
                break
            time.sleep(poll)
        else:
            killed = signal_group(pgid, signal.SIGKILL)
    try:
        exit_code = process.wait(timeout=max(grace, 5.0))
    except subprocess.TimeoutExpired:  # a process stuck in the kernel (D state): report it, do not hang
        exit_code = None
    # Children that ignored SIGTERM while the leader exited at once are still in the group.
    if group_alive(pgid):
        killed = signal_group(pgid, signal.SIGKILL) or killed
    return StopResult(exit_code, killed, time.monotonic() - started)


class Watchdog:
    """The separate process that cleans up after railguard if railguard dies mid-drill.

    Protocol on its stdin, one line each: ``group PGID``, ``container NAME``, ``grace SECONDS``,
    ``workspace DIR``,
    and ``done`` once railguard has stopped the app itself. EOF before ``done`` means railguard
    died: the watchdog kills the group and removes the container.
    """

    def __init__(self, *, docker: str = "docker") -> None:
        # Run by path in isolated mode: the watchdog is standard library only, starts in a few
        # milliseconds and does not depend on railguard's install still being importable.
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WATCHDOG_SCRIPT), "--docker", docker],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    @property
    def pid(self) -> int:
        return self._process.pid

    def _tell(self, line: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write((line + "\n").encode())
        self._process.stdin.flush()

    def watch_group(self, pgid: int, grace: float) -> None:
        self._tell(f"grace {grace}")
        self._tell(f"group {pgid}")

    def watch_container(self, name: str) -> None:
        self._tell(f"container {name}")

    def watch_workspace(self, directory: Path) -> None:
        self._tell(f"workspace {directory}")

    def trigger(self) -> None:
        """Close the pipe without ``done``: the watchdog cleans up as if railguard had died."""
        with contextlib.suppress(OSError, ValueError):
            assert self._process.stdin is not None
            self._process.stdin.close()

    def release(self) -> None:
        """The app is stopped: the watchdog exits without touching anything."""
        with contextlib.suppress(OSError, ValueError):
            self._tell("done")
            assert self._process.stdin is not None
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

