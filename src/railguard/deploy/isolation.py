"""Keeping a pushed commit's test suite away from railguard's secrets.

Pushed code is untrusted code: its "test suite" can be anything. Run as railguard's own user it
reads ``/proc/$PPID/environ`` (every token the gate was started with), the ``*_FILE`` secret
files, the run queue and the mirror, and prints them base64-encoded past any scrubbing of the
log. A clean environment is not enough; the suite must not be *able* to read them. One
:class:`Isolation` value says how, and :func:`railguard.deploy.suite.run_suite` applies it, so
the gate's webhook runs, the gate's pre-receive checks and the installed hook all get the same:

``bwrap``
    bubblewrap: a new user, PID, network, IPC and UTS namespace, every capability dropped,
    ``uid 65534`` inside; the filesystem is ``/usr`` (and its ``/bin``, ``/lib`` links), a short
    list of harmless ``/etc`` files, a fresh ``/proc`` that shows only the sandbox, a private
    ``/dev`` and ``/tmp``, the configured read-only toolchain paths, and the run's own directory
    (the tree and its HOME), writable. Nothing else exists in there: not the state directory,
    not the secret files, not the gate's process. No network but a private loopback.
``user:NAME``
    the suite runs as another (unprivileged) account. Another uid cannot read the gate's
    ``/proc/PID/environ`` (ptrace access mode, proc(5)), but it can read every file that is
    world-readable, so :func:`resolve_isolation` checks, as that user, that none of the secret
    files, the state directory or the gate's environ is readable, and refuses otherwise. The
    command runs under :mod:`railguard.deploy.reaper`, which switches to the account and, when
    the command ends or is stopped, kills whatever it left behind: a process that left the run's
    process group with ``setsid()`` would otherwise live on as that user, beside the next run
    (bwrap's PID namespace does the same for a sandbox).
``auto`` (the default)
    ``bwrap`` when it runs here; else, when railguard is root, ``user:nobody`` if that account
    passes the same check; else no isolation, with a warning in the log, on the run page and in
    the commit status.
``none``
    the suite runs as railguard's user with the clean environment only (a warning each run).

The gate's pre-deploy rehearsal (:mod:`railguard.rehearsal.rehearse`) starts the pushed app
under the same value, with one difference: ``share_net``, the host's network namespace, since
railguard's health check must reach the app on 127.0.0.1 (docs/deploy.md, "Rehearsed deploys").
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from railguard.errors import ConfigError

#: The uid and gid the suite has inside the bwrap sandbox ("nobody").
SANDBOX_ID = 65534
#: /etc entries a suite may need (name service, TLS roots, time zone, the loader); never the
#: whole of /etc, which holds shadow files and, often, an application's secrets.
ETC_ALLOWED = ("passwd", "group", "hosts", "nsswitch.conf", "resolv.conf", "host.conf", "localtime", "timezone",
               "ssl", "ca-certificates", "ca-certificates.conf", "alternatives", "ld.so.cache", "ld.so.conf",
               "ld.so.conf.d", "os-release", "mime.types", "protocols", "services", "gai.conf", "debian_version")
#: Top-level directories of a merged-/usr system: links into /usr are recreated, real ones bound.
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
NOT_ISOLATED = "the test suite runs as railguard's own user and could read railguard's secrets"
#: ``user:NAME``: the command runs under this script (standard library only, run by path).
REAPER_SCRIPT = Path(__file__).with_name("reaper.py")
#: Seconds the reaper gives a stopped command before SIGKILL: shorter than the suite's own stop
#: (:func:`railguard.deploy.suite._stop_group` waits 3 s), so the reaper is done before it is killed.
REAPER_GRACE = 2.0


class IsolationUnavailable(ConfigError):
    """The configured isolation cannot work on this machine."""


@dataclass(frozen=True)
class Isolation:
    """How a suite of untrusted code is run; :data:`NO_ISOLATION` for trusted code."""

    mode: Literal["none", "bwrap", "user"]
    #: user mode: the account, with its ids.
    user: str | None = None
    uid: int | None = None
    gid: int | None = None
    #: bwrap: the executable, and extra read-only paths (a toolchain outside /usr).
    bwrap: str | None = None
    read_only: tuple[Path, ...] = ()
    #: mode none: why (shown as a warning wherever a run is shown).
    warning: str | None = None

    @property
    def isolated(self) -> bool:
        return self.mode != "none"

    def describe(self) -> str:
        if self.mode == "bwrap":
            return "isolated: bwrap sandbox, no network, only the tree mounted"
        if self.mode == "user":
            return f"isolated: runs as user {self.user} (uid {self.uid})"
        return f"NOT ISOLATED: {self.warning or NOT_ISOLATED}"

    def command(self, argv: Sequence[str], *, cwd: Path, root: Path, share_net: bool = False,
                grace: float = REAPER_GRACE) -> list[str]:
        """``argv`` as it is started: wrapped in bwrap, under the reaper as the account
        (``user:NAME``), or unchanged. ``share_net``: the host's network namespace instead of a
        private loopback (the rehearsed app, which railguard's health check must reach on
        127.0.0.1; everything else stays as for a suite). ``grace``: how long the reaper lets a
        stopped command end before SIGKILL; less than the caller waits before it kills the reaper."""
        if self.mode == "user":
            assert self.uid is not None and self.gid is not None
            return [sys.executable, "-I", str(REAPER_SCRIPT), str(self.uid), str(self.gid), f"{max(grace, 0.0):g}",
                    "--", *argv]
        if self.mode != "bwrap":
            return list(argv)
        assert self.bwrap is not None
        return [self.bwrap, *bwrap_arguments(root=root, cwd=cwd, read_only=self.read_only, share_net=share_net),
                "--", *argv]

    def can_see(self, executable: Path, root: Path) -> bool:
        """Whether the suite's command exists where it runs: under bwrap only /usr, the
        ``read_only`` paths and the run's own directory do."""
        if self.mode != "bwrap":
            return True
        real = executable.resolve()
        return any(real == base or base in real.parents
                   for base in (Path("/usr"), root.resolve(), *(path.resolve() for path in self.read_only)))

    def prepare(self, root: Path) -> None:
        """user mode: hand the run's private directory (made by railguard with mkdtemp, so nobody
        else could plant anything in it) to the suite's user, without following any link."""
        if self.mode != "user":
            return
        assert self.uid is not None and self.gid is not None
        descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchown(descriptor, self.uid, self.gid)
        finally:
            os.close(descriptor)
        for _, directories, files, directory_fd in os.fwalk(root, follow_symlinks=False):
            for name in directories + files:
                os.chown(name, self.uid, self.gid, dir_fd=directory_fd, follow_symlinks=False)


NO_ISOLATION = Isolation("none", warning="isolation is off")


def bwrap_arguments(*, root: Path, cwd: Path, read_only: Iterable[Path] = (), share_net: bool = False) -> list[str]:
    """The sandbox (see the module docstring). Later mounts go on top of earlier ones: /tmp is a
    fresh tmpfs first, then the run's directory (usually under /tmp) is bound into it.
    ``share_net`` keeps the host's network namespace (``--share-net`` after ``--unshare-all``)."""
    args = ["--die-with-parent", "--new-session", "--unshare-all", *(["--share-net"] if share_net else []),
            "--unshare-user",
            "--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID), "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr"]
    for name in ROOT_LINKS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_ALLOWED:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in read_only:
        args += ["--ro-bind-try", str(path), str(path)]
    args += ["--bind", str(root), str(root), "--chdir", str(cwd)]
    return args


@functools.lru_cache(maxsize=8)
def bwrap_problem(executable: str) -> str | None:
    """None when a bwrap sandbox starts here, else why not (bwrap's own message). Checked once:
    a kernel without unprivileged user namespaces, or a container without the right, fails here."""
    with tempfile.TemporaryDirectory(prefix="railguard-bwrap-probe-") as directory:
        try:
            done = subprocess.run([executable, *bwrap_arguments(root=Path(directory), cwd=Path(directory)),
                                   "--", "/bin/sh", "-c", "echo ok > probe"],
                                  capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{executable} could not be started: {exc}"
        if done.returncode != 0 or not Path(directory, "probe").exists():
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            return f"bwrap cannot start a sandbox here: {reason[-1] if reason else 'exit ' + str(done.returncode)}"
    return None


def readable_as(uid: int, gid: int, paths: Iterable[Path]) -> list[Path]:
    """Which of ``paths`` the account can read (files) or enter (directories), asked as that
    account, so every permission on the way counts exactly as the kernel applies it."""
    paths = [Path(p) for p in paths]
    if not paths:
        return []
    script = 'for p; do if [ -d "$p" ]; then [ -x "$p" ] && echo "$p"; elif [ -r "$p" ]; then echo "$p"; fi; done; :'
    done = subprocess.run(["/bin/sh", "-c", script, "sh", *map(str, paths)], user=uid, group=gid, extra_groups=[],
                          capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"}, cwd="/")
    if done.returncode != 0:
        raise IsolationUnavailable(f"cannot check what uid {uid} can read: "
                                   f"{done.stderr.decode(errors='replace').strip()[:200]}")
    found = set(done.stdout.decode(errors="replace").splitlines())
    return [path for path in paths if str(path) in found]


def resolve_isolation(spec: str, *, private: Iterable[Path] = (), read_only: Iterable[Path] = (),
                      where: str = "gate.isolation") -> Isolation:
    """The isolation ``spec`` names (``auto``, ``bwrap``, ``user:NAME``, ``none``), checked on this
    machine. ``private`` are the paths the suite must not read: the secret files, the state and
    gate directories. A named mode that cannot work is an error (the service does not start);
    ``auto`` falls back, ending at no isolation with a warning."""
    private = [Path(p) for p in private]
    read_only = tuple(Path(p) for p in read_only)
    if spec == "none":
        return Isolation("none", warning=f'{where} = "none": {NOT_ISOLATED}')
    for path in read_only:
        hidden = next((p for p in private if p == path or path in p.parents), None)
        if hidden is not None:
            raise IsolationUnavailable(f"{where}: the read-only path {path} holds {hidden}, which the tests must "
                                       "not see", hint="Name a narrower directory (the toolchain's own)")
    if spec in ("auto", "bwrap"):
        executable = shutil.which("bwrap")
        problem = "bwrap is not installed (Debian: apt-get install bubblewrap)" if executable is None \
            else bwrap_problem(executable)
        if problem is None:
            return Isolation("bwrap", bwrap=executable, read_only=read_only)
        if spec == "bwrap":
            raise IsolationUnavailable(f"{where} = \"bwrap\" but {problem}",
                                       hint='Install bubblewrap and allow user namespaces, or set '
                                            f'{where} = "user:NAME" with an unprivileged account')
        if os.geteuid() == 0:
            try:
                return _user_isolation("nobody", private, where)
            except IsolationUnavailable as exc:
                problem += f"; user nobody: {exc.message}"
        warning = (f"{NOT_ISOLATED} ({problem}). Install bubblewrap, or set {where} = \"user:NAME\" "
                   "(docs/gate.md, \"Isolation\")")
        return Isolation("none", warning=warning)
    if spec.startswith("user:") and spec[5:]:
        return _user_isolation(spec[5:], private, where)
    raise IsolationUnavailable(f"{where} = {spec!r} is not an isolation mode",
                               hint='Use "auto", "bwrap", "user:NAME" or "none"')


def _user_isolation(name: str, private: list[Path], where: str) -> Isolation:
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise IsolationUnavailable(f"{where}: there is no user {name!r} on this machine",
                                   hint=f"Create it (useradd --system --no-create-home {name}) or use bwrap") from None
    if os.geteuid() != 0:
        raise IsolationUnavailable(f"{where} = \"user:{name}\" needs railguard to run as root, to switch user",
                                   hint='Run the service as root, or use isolation = "bwrap"')
    if account.pw_uid in (0, os.geteuid()):
        raise IsolationUnavailable(f"{where}: user {name} is railguard's own or root: that isolates nothing",
                                   hint="Name an unprivileged account of its own")
    exposed = readable_as(account.pw_uid, account.pw_gid, [*private, Path(f"/proc/{os.getpid()}/environ")])
    if exposed:
        raise IsolationUnavailable(f"{where}: user {name} can read {exposed[0]}"
                                   + (f" (and {len(exposed) - 1} more)" if len(exposed) > 1 else ""),
                                   hint="chmod 700 (directories) or 600 (files) so that only railguard's user "
                                        "can read them, or use bwrap")
    return Isolation("user", user=name, uid=account.pw_uid, gid=account.pw_gid)
