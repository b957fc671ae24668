"""Run untrusted code as another user so that none of it outlives the run (``user:NAME`` isolation).

Usage, run by path with ``python3 -I`` (standard library only, like the drill's watchdog)::

    reaper.py UID GID GRACE -- ARGV...

Why a process of its own: the process group that railguard stops after a run (a timeout, a
cancel, the end of a rehearsal) holds only what stayed in it. Pushed code can call ``setsid()``
in a double-forked child, leave the group, and live on as the isolation's user, where it could
tamper with the next push's test run (handed to the same user) or race railguard's reads of the
run's files. bwrap closes that with a PID namespace; this closes it for ``user:NAME``:

1. The reaper (railguard's user: root, for ``user:NAME``) marks itself a child subreaper
   (``prctl(PR_SET_CHILD_SUBREAPER)``): every descendant whose parent dies is re-parented to
   it, not to init, whatever session or group it moved to.
2. It forks the command into a process group of its own: no supplementary groups, the
   account's gid and uid, umask 077, then ``PR_SET_PDEATHSIG`` (after the uid change, which
   clears it) and exec.
3. It waits for the command. SIGTERM or SIGINT to the reaper (railguard stopping the run's
   group, which holds the reaper alone) goes on to the command's group; after GRACE seconds
   the command's group gets SIGKILL. GRACE is shorter than the caller's own grace, so the
   reaper is done before railguard would SIGKILL it.
4. Once the command has exited, every descendant left is SIGKILLed and reaped, round after
   round, until the reaper has no child at all; then it exits as the command did (the same exit
   status, or killed by the same signal), so callers see the command's own end.

A reaper killed by SIGKILL itself (railguard killed) leaves the command to the drill's watchdog
and PDEATHSIG, as without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl() -> object:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl


def _children(me: int) -> list[int]:
    """The pids whose parent is ``me`` (from /proc: a re-parented orphan is no child we forked)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.append(int(entry))
    return found


def _reap_everything(me: int) -> None:
    """SIGKILL and reap every descendant, round after round, until the reaper has no child."""
    while True:
        for pid in _children(me):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            return
        time.sleep(0.005)  # killed ones still exiting, or their orphans being re-parented here


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print("usage: reaper.py UID GID GRACE -- ARGV...", file=sys.stderr)
        return 2
    uid, gid, grace, command = int(argv[0]), int(argv[1]), float(argv[2]), argv[4:]
    prctl = _prctl()
    if prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:  # type: ignore[operator]
        print("reaper: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
        return 126
    me = os.getpid()
    child = -1
    stopping: list[float] = []  # when a stop was asked for (monotonic), once

    def stop(signum: int, _frame: object) -> None:
        if not stopping:
            stopping.append(time.monotonic())
        if child > 0:  # else: asked to stop before the fork, _wait kills it after the grace
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    child = os.fork()
    if child == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.setpgid(0, 0)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.umask(0o077)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # type: ignore[operator]
            if os.getppid() != me:
                os._exit(1)
            os.execvp(command[0], command)
        except OSError as exc:
            print(f"reaper: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        os._exit(127)
    with contextlib.suppress(OSError):
        os.setpgid(child, child)  # also here: a signal may come before the child has run
    status = _wait(child, stopping, grace)
    _reap_everything(me)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum != signal.SIGKILL:  # its handler cannot be set (nor needs to be)
            signal.signal(signum, signal.SIG_DFL)
        os.kill(me, signum)
    return os.WEXITSTATUS(status)


def _wait(child: int, stopping: list[float], grace: float) -> int:
    """The command's wait status; its group SIGKILLed once a stop is ``grace`` seconds old."""
    killed = False
    while True:
        try:
            pid, status = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:  # reaped by a round below meanwhile: it was killed
            return signal.SIGKILL
        if pid == child:
            return status
        if stopping and not killed and time.monotonic() - stopping[0] >= grace:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
            killed = True
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
