"""Installing and removing the Python pre-receive hook, and the safe writes into a repository
that the sh hook of :mod:`railguard.deploy.hook.remote` shares.

Installing on a real server: the repositories belong to the git user (uid 1000 in Forgejo's
image), the admin runs ``railguard hook install`` as root, and git runs the hook as the git user.
So the install (1) tells git to trust that one repository (``safe.directory``: git refuses to
work in a repository another user owns, "dubious ownership", and only for ``rev-parse``, which
runs nothing from the repository's configuration), and (2) writes every file as its owner: the
repository's directories are the git user's to write, hence hostile to root, so each file is
created under a random name with O_CREAT|O_EXCL|O_NOFOLLOW in a directory opened with
O_NOFOLLOW, chowned and chmodded through its descriptor, fsynced, then renamed into place.

The order of an install: the repository must be bare (pre-receive runs on the server); the
owner the files get; for a Python hook, a check that this owner can run the Python and read the
configuration (git runs the hook as that user, and a hook it cannot run rejects every push);
the ``hooks`` directory; then the one place the hook goes (:func:`hook_target`:
``pre-receive.d/railguard`` in Forgejo's layout, else ``pre-receive``, an existing one kept as
``pre-receive.railguard-chained`` and run first); the hook file last, so a failed install leaves
no hook behind.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from railguard.deploy.git import Git
from railguard.errors import ConfigError, NotFound, UsageError

MARKER = "# railguard-hook: installed by `railguard hook install`"
HOOK_NAME = "railguard"
CHAINED_SUFFIX = ".railguard-chained"
#: The module the installed hook runs. Hooks installed before the hook had its own package run
#: ``railguard.deploy.hook_main``, which stays as a shim for them.
ENTRY_POINT = "railguard.deploy.hook.main"


class HookAlreadyInstalled(UsageError):
    pass


class HookNotInstalled(NotFound):
    pass


class NotABareRepository(UsageError):
    pass


@dataclass
class Installation:
    """Where railguard's hook is (or, from :func:`hook_place`, is to be written)."""

    path: Path
    layout: Literal["pre-receive.d", "pre-receive"]
    chained: Path | None = None


#: (uid, gid) that files written into a repository get.
Owner = tuple[int, int]


def trusting_git(git_dir: Path, env: Mapping[str, str] = os.environ) -> Git:
    """``git`` in ``git_dir`` with that one directory in ``safe.directory``, passed as command-line
    configuration through the environment (``GIT_CONFIG_COUNT``; git honours safe.directory only
    from protected configuration, which includes the command line, never the repository's own)."""
    extra = dict(env)
    count = int(extra.get("GIT_CONFIG_COUNT", "0") or "0")
    extra.update({"GIT_CONFIG_COUNT": str(count + 1), f"GIT_CONFIG_KEY_{count}": "safe.directory",
                  f"GIT_CONFIG_VALUE_{count}": str(git_dir.absolute())})
    return Git(git_dir, env=extra)


def hooks_dir(git_dir: Path) -> Path:
    git = trusting_git(git_dir)
    git.ensure_repository()
    if git.text("rev-parse", "--is-bare-repository") != "true":
        raise NotABareRepository(f"{git_dir} is not a bare repository: pre-receive runs on the server",
                                 hint="Give the repository's directory on the Forgejo host "
                                      "(e.g. /data/git/repositories/OWNER/REPO.git)")
    return git_dir / "hooks"


def repository_owner(git_dir: Path) -> Owner | None:
    """The owner files written into ``git_dir`` must get: its own owner when root installs into a
    repository of another user (the git user, who runs the hooks); None (keep ours) otherwise."""
    info = os.stat(git_dir)
    if os.geteuid() != 0 or info.st_uid == 0:
        return None
    return info.st_uid, info.st_gid


def check_owner_can_run(owner: Owner, python: str, config: Path) -> None:
    """Refuse a hook the repository's owner could not run (git runs it as that user): it would
    reject every push. Asked of the system itself, as that user, rather than worked out from modes."""
    uid, gid = owner
    try:
        groups = os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except KeyError:
        groups = [gid]
    for test, path, what in (("-x", python, "run the Python"), ("-r", str(config), "read the configuration")):
        done = subprocess.run(["sh", "-c", f'test {test} "$1"', "sh", path], user=uid, group=gid, extra_groups=groups,
                              env={"PATH": os.defpath}, capture_output=True, check=False)
        if done.returncode != 0:
            raise ConfigError(f"the repository's owner (uid {uid}) cannot {what} {path}, and git runs the hook "
                              "as that user",
                              hint="Install railguard where that user can run it (e.g. pipx with PIPX_HOME=/opt/pipx"
                                   " and PIPX_BIN_DIR=/usr/local/bin) and let it read the configuration, or use "
                                   "--remote (docs/hook.md)")


def ensure_directory(path: Path, owner: Owner | None) -> None:
    """``mkdir`` that gives a directory it creates to ``owner``; refuses a symlink in its place."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        created = False
    else:
        created = True
    fd = _open_directory(path)
    try:
        if created and owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


def _open_directory(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(f"cannot open the directory {path}: {exc.strerror}",
                          hint="It must be a real directory, not a symlink") from None



def chained_lines(call: str) -> list[str]:
    """sh lines that run the hook railguard replaced first, then ``call``, both with git's input."""
    return [
        "# The hook that was here before railguard runs first, with the same input.",
        "input=$(cat)",
        f'chained="$(dirname "$0")/pre-receive{CHAINED_SUFFIX}"',
        'printf \'%s\\n\' "$input" | "$chained" "$@" || exit $?',
        f'printf \'%s\\n\' "$input" | {call}',
    ]

def hook_script(*, python: str, config: Path, app: str, chain: bool) -> str:
    """The installed hook: POSIX sh that hands the work to this railguard install.

    The interpreter and the configuration are absolute paths baked in, so the hook works
    without PATH (Forgejo runs hooks with a minimal environment). It runs
    :mod:`railguard.deploy.hook.main` (:data:`ENTRY_POINT`), the same check as ``railguard hook
    run`` without the rest of the command line.
    """
    command = " ".join(shlex.quote(part) for part in
                       [python, "-m", ENTRY_POINT, "--config", str(config), "--app", app])
    lines = ["#!/bin/sh", MARKER, "# Tests pushes to protected branches before they land; docs/hook.md."]
    if chain:
        lines += chained_lines(command)
    else:
        lines.append(f"exec {command}")
    return "\n".join(lines) + "\n"


def hook_place(git_dir: Path, hooks: Path) -> Installation:
    """Where railguard's hook goes, for the Python hook and the sh hook alike; refuses a second install.

    ``hooks/pre-receive.d/railguard`` when that directory exists (Forgejo's layout: its
    dispatcher runs every hook there, and its hook resyncs keep them); else ``hooks/pre-receive``,
    where an existing hook that is not railguard's is never overwritten: it is to be kept as
    ``pre-receive.railguard-chained`` (:attr:`Installation.chained`) and still runs first.
    Nothing is written here."""
    dispatch_dir = hooks / "pre-receive.d"
    if dispatch_dir.is_dir():
        target = dispatch_dir / HOOK_NAME
        if target.exists():
            raise HookAlreadyInstalled(f"{target} already exists",
                                       hint=f"railguard hook uninstall {git_dir}, then install again")
        return Installation(target, "pre-receive.d")
    target = hooks / "pre-receive"
    if not target.exists():
        return Installation(target, "pre-receive")
    if is_ours(target):
        raise HookAlreadyInstalled(f"railguard's hook is already installed in {target}",
                                   hint=f"railguard hook uninstall {git_dir}, then install again")
    chained = hooks / f"pre-receive{CHAINED_SUFFIX}"
    if chained.exists():
        raise ConfigError(f"{chained} exists but {target} is not railguard's",
                          hint="Sort the two hooks out by hand, then install again")
    return Installation(target, "pre-receive", chained=chained)


def put_hook(place: Installation, script: str, *, owner: Owner | None) -> Installation:
    """Write the hook into ``place`` (from :func:`hook_place`), moving the hook that was there to
    ``place.chained`` first; ``script`` must then run it (:func:`chained_lines`)."""
    if place.chained is not None:
        os.replace(place.path, place.chained)
    write_executable(place.path, script, owner=owner)
    return place


def install_hook(git_dir: Path, *, config: Path, app: str, python: str = sys.executable) -> Installation:
    """Install the Python hook where :func:`hook_place` says, refusing one the repository's owner
    could not run."""
    if not config.is_absolute():
        config = config.resolve()
    hooks = hooks_dir(git_dir)
    owner = repository_owner(git_dir)
    if owner is not None:
        check_owner_can_run(owner, python, config)
    ensure_directory(hooks, owner)
    place = hook_place(git_dir, hooks)
    script = hook_script(python=python, config=config, app=app, chain=place.chained is not None)
    return put_hook(place, script, owner=owner)


def uninstall_hook(git_dir: Path) -> Installation:
    """Remove railguard's hook; a chained hook goes back to its place."""
    hooks = hooks_dir(git_dir)
    candidate = hooks / "pre-receive.d" / HOOK_NAME
    if candidate.is_file() and is_ours(candidate):
        candidate.unlink()
        return Installation(candidate, "pre-receive.d")
    target = hooks / "pre-receive"
    if target.is_file() and is_ours(target):
        chained = hooks / f"pre-receive{CHAINED_SUFFIX}"
        if chained.exists():
            os.replace(chained, target)
            return Installation(target, "pre-receive", chained=chained)
        target.unlink()
        return Installation(target, "pre-receive")
    raise HookNotInstalled(f"railguard's hook is not installed in {git_dir}",
                           hint=f"Install it with: railguard hook install {git_dir}")


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def write_executable(path: Path, text: str, *, owner: Owner | None = None) -> None:
    """Write a hook (mode 0755), replacing ``path``; see :func:`write_in_repository`."""
    write_in_repository(path, text.encode("utf-8"), mode=0o755, owner=owner, replace=True)


def write_in_repository(path: Path, data: bytes, *, mode: int, owner: Owner | None, replace: bool) -> bool:
    """Write ``path`` whole or not at all, in a directory its owner (not us) may write.

    The temporary file gets a random name, O_CREAT|O_EXCL|O_NOFOLLOW, in the directory opened
    with O_NOFOLLOW (a symlink planted there is never followed); owner and mode are set through
    the descriptor. Without ``replace`` an existing ``path`` is kept and False is returned
    (``link`` fails where ``rename`` would replace it).
    """
    directory = _open_directory(path.parent)
    temp = f".{path.name}.{secrets.token_hex(8)}.railguard-tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                if owner is not None:
                    os.fchown(handle.fileno(), *owner)
                os.fchmod(handle.fileno(), mode)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if replace:
                os.replace(temp, path.name, src_dir_fd=directory, dst_dir_fd=directory)
            else:
                try:
                    os.link(temp, path.name, src_dir_fd=directory, dst_dir_fd=directory, follow_symlinks=False)
                except FileExistsError:
                    return False
            os.fsync(directory)
            return True
        finally:
            try:
                os.unlink(temp, dir_fd=directory)
            except FileNotFoundError:
                pass
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}",
                          hint="Run railguard hook install as the repository's owner or as root") from None
    finally:
        os.close(directory)
