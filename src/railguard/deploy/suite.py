"""Running the app's test suite: an argv list from trusted config, a timeout, a readable tail.

Used by ``railguard release`` (in the work tree, the operator's own code), and for pushed code
by the pre-receive hook and the gate (in a fresh directory holding ``git archive`` of the pushed
commit). Pushed code is untrusted: those callers pass an :class:`~railguard.deploy.isolation.Isolation`
and this is the one place it is applied (the sandbox's argv, the user switch, the directory
handed over), so every way railguard tests a pushed tree is isolated the same way.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from railguard.deploy.isolation import NO_ISOLATION, Isolation
from railguard.errors import ConfigError


class SuiteCommandMissing(ConfigError):
    pass


class UnsafeTree(tarfile.TarError):
    """A pushed tree with a member that would land outside its directory, or is no plain file."""


def extract_tree(archive: tarfile.TarFile, where: Path) -> None:
    """Extract ``git archive``'s tar as git wrote it, never letting a member land outside ``where``.

    The "tar" extraction filter does that from Python 3.11.4 on; the hook may run under an older
    3.11 (Debian 12's python3 is 3.11.2, a likely interpreter on a Forgejo host), where the same
    rules are applied here: relative names without "..", only files, directories and symlinks,
    no setuid/setgid bits and no group/other write.
    """
    if hasattr(tarfile, "tar_filter"):
        archive.extractall(where, filter="tar")
        return
    members = []
    for member in archive.getmembers():
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir() or member.issym()):
            raise UnsafeTree(f"the pushed tree holds {member.name!r}, which railguard does not extract")
        member.mode &= 0o755
        members.append(member)
    archive.extractall(where, members=members)


@dataclass
class SuiteRun:
    argv: list[str]
    returncode: int | None
    timed_out: bool
    seconds: float
    #: The last lines of stdout and stderr, interleaved as the suite wrote them.
    tail: list[str] = field(default_factory=list)
    lines: int = 0
    #: Stopped because the caller is shutting down, not because of the suite: no verdict.
    cancelled: bool = False

    @property
    def passed(self) -> bool:
        return not self.timed_out and not self.cancelled and self.returncode == 0

    def summary(self) -> str:
        command = " ".join(self.argv)
        if self.cancelled:
            return f"`{command}` was stopped after {self.seconds:.0f}s: railguard is shutting down"
        if self.timed_out:
            return f"`{command}` did not finish within {self.seconds:.0f}s and was stopped"
        if self.returncode == 0:
            return f"`{command}` passed ({self.lines} lines of output, {self.seconds:.1f}s)"
        return f"`{command}` failed with exit code {self.returncode}"


def check_suite_command(argv: Sequence[str], where: str) -> list[str]:
    """The configured command, or a clear error when it is empty."""
    if not argv:
        raise SuiteCommandMissing(f"{where} is empty: railguard has no test suite to run",
                                 hint=f'Set it in railguard.toml, e.g. {where.rsplit(".", 1)[-1]} = ["bun", "test"]')
    return list(argv)


def run_suite(argv: Sequence[str], *, cwd: Path, timeout: float, env: Mapping[str, str] | None = None,
              tail_lines: int = 40, on_line: Callable[[str], None] | None = None,
              cancel: threading.Event | None = None, isolation: Isolation = NO_ISOLATION,
              root: Path | None = None) -> SuiteRun:
    """Run ``argv`` in ``cwd``; stop it (and everything it started) after ``timeout`` seconds, or
    as soon as ``cancel`` is set (a service shutting down must not leave a suite behind).

    ``isolation`` keeps untrusted code away from railguard's secrets; ``root`` is the private
    directory (made with mkdtemp, holding ``cwd`` and the suite's HOME) that the suite may write,
    and the only one it sees under bwrap."""
    argv = list(argv)
    root = root or cwd
    executable = shutil.which(argv[0], path=(env or os.environ).get("PATH"))
    if executable is None and not Path(cwd, argv[0]).is_file():
        raise SuiteCommandMissing(f"the test command {argv[0]!r} was not found",
                                 hint="Install it on this machine or fix deploy.test_command")
    if executable is not None and not isolation.can_see(Path(executable), root):
        raise SuiteCommandMissing(f"the test command {argv[0]!r} is {executable}, outside what the sandbox sees",
                                 hint="Add its directory to gate.isolation_paths (deploy.test_isolation_paths "
                                      "for the hook), or install it under /usr")
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    count = 0
    started = time.monotonic()
    isolation.prepare(root)
    # A session of its own so a timeout can stop the whole process group (bun, its workers, ...;
    # under user:NAME the reaper, which stops the suite's own group and what left it).
    process = subprocess.Popen(isolation.command(argv, cwd=cwd, root=root), cwd=cwd,
                               env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def pump() -> None:
        nonlocal count
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            count += 1
            if on_line is not None:
                on_line(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = cancelled = False
    deadline = started + timeout
    try:
        while True:
            try:
                process.wait(timeout=max(0.0, min(deadline - time.monotonic(), 0.2 if cancel else timeout)))
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
    finally:
        if process.poll() is None:
            _stop_group(process)
    # Children that inherited the pipe may keep it open; the group kill above closes it.
    reader.join(timeout=5)
    seconds = timeout if timed_out else time.monotonic() - started
    return SuiteRun(argv=argv, returncode=process.returncode, timed_out=timed_out, seconds=seconds,
                   tail=list(tail), lines=count, cancelled=cancelled)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the suite's process group, give it a moment, then SIGKILL whatever is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
