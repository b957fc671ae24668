"""Option B: a server-side ``pre-receive`` hook that runs the test suite before a push lands.

git (and Forgejo) run the hook with one line per ref on stdin, ``<old> <new> <refname>``;
any non-zero exit rejects the whole push, and everything the hook prints reaches the pusher
as ``remote:`` lines. During pre-receive the pushed objects sit in a quarantine directory
that git exposes through ``GIT_OBJECT_DIRECTORY`` and friends, so the commit is read with
``git archive`` under the hook's own environment, and those variables are removed before the
test suite runs (a suite that calls git would otherwise act on the server's repository).

The test command comes from railguard's configuration only, as an argv list: nothing from
the push (ref names, file contents) is ever interpreted by a shell. The pushed commit is
untrusted code, so the suite runs isolated (``deploy.test_isolation``, see
:mod:`railguard.deploy.isolation`) where this server allows it, with a warning to the pusher
where it does not.

Installing on a real server: the repositories belong to the git user (uid 1000 in Forgejo's
image), the admin runs ``railguard hook install`` as root, and git runs the hook as the git user.
So the install (1) tells git to trust that one repository (``safe.directory``: git refuses to
work in a repository another user owns, "dubious ownership", and only for ``rev-parse``, which
runs nothing from the repository's configuration), and (2) writes every file as its owner: the
repository's directories are the git user's to write, hence hostile to root, so each file is
created under a random name with O_CREAT|O_EXCL|O_NOFOLLOW in a directory opened with
O_NOFOLLOW, chowned and chmodded through its descriptor, fsynced, then renamed into place.
"""

from __future__ import annotations

import fnmatch
import os
import pwd
import secrets
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from railguard.config import DeploySettings
from railguard.deploy.git import ZERO_SHA, Git, GitError
from railguard.deploy.isolation import NO_ISOLATION, Isolation, resolve_isolation
from railguard.deploy.pipeline import TreeUnusable, is_full_sha, refuse_secrets_in_pass_env, test_tree
from railguard.deploy.suite import SuiteCommandMissing, SuiteRun, check_suite_command
from railguard.errors import ConfigError, NotFound, UsageError

MARKER = "# railguard-hook: installed by `railguard hook install`"
HOOK_NAME = "railguard"
CHAINED_SUFFIX = ".railguard-chained"


class HookAlreadyInstalled(UsageError):
    pass


class HookNotInstalled(NotFound):
    pass


class NotABareRepository(UsageError):
    pass


class MalformedHookInput(UsageError):
    pass


# --- the pure core --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def is_delete(self) -> bool:
        return self.new == ZERO_SHA

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None


@dataclass(frozen=True)
class Decision:
    update: RefUpdate
    action: Literal["test", "pass", "reject"]
    reason: str


def parse_updates(text: str) -> list[RefUpdate]:
    """The ref lines git writes to pre-receive's stdin. A ref name may contain anything git allows."""
    updates = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(" ", 2)
        if len(parts) != 3 or not all(is_full_sha(p) for p in parts[:2]) or not parts[2]:
            raise MalformedHookInput(f"line {number} of the hook's input is not '<old> <new> <ref>': {line[:80]!r}",
                                     hint="railguard hook run reads what git gives a pre-receive hook")
        updates.append(RefUpdate(*parts))
    return updates


def decide(updates: Iterable[RefUpdate], protected: list[str], *, allow_delete: bool) -> list[Decision]:
    """Pure: what happens to each ref of a push (test it, let it pass, or reject it outright)."""
    decisions = []
    for update in updates:
        branch = update.branch
        if branch is None or not any(fnmatch.fnmatchcase(branch, pattern) for pattern in protected):
            decisions.append(Decision(update, "pass", "not a protected branch"))
        elif update.is_delete:
            decisions.append(Decision(update, "pass", "deleting a protected branch is allowed by config")
                             if allow_delete else
                             Decision(update, "reject", "deleting a protected branch is not allowed"))
        else:
            decisions.append(Decision(update, "test", "protected branch"))
    return decisions


# --- running the checks ---------------------------------------------------------------------------

@dataclass
class RefVerdict:
    ref: str
    accepted: bool
    summary: str
    run: SuiteRun | None = None


@dataclass
class PushVerdict:
    refs: list[RefVerdict] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return all(r.accepted for r in self.refs)


def check_push(updates: list[RefUpdate], deploy: DeploySettings, *, git_dir: Path,
               env: Mapping[str, str] = os.environ, say: Callable[[str], None],
               isolation: Isolation = NO_ISOLATION) -> PushVerdict:
    """Test every protected ref of one push, each commit in a directory of its own."""
    verdict = PushVerdict()
    decisions = decide(updates, deploy.protected_branches, allow_delete=deploy.allow_delete_protected)
    tested: dict[str, RefVerdict] = {}
    for decision in decisions:
        ref = decision.update.ref
        if decision.action == "pass":
            verdict.refs.append(RefVerdict(ref, True, decision.reason))
            continue
        if decision.action == "reject":
            verdict.refs.append(RefVerdict(ref, False, decision.reason))
            continue
        commit = decision.update.new
        if commit in tested:
            previous = tested[commit]
            verdict.refs.append(RefVerdict(ref, previous.accepted, previous.summary, previous.run))
            continue
        say(f"testing {ref} at {commit[:12]}: {' '.join(shlex.quote(a) for a in deploy.test_command)}")
        result = _test_commit(ref, commit, deploy, git_dir=git_dir, env=env, isolation=isolation)
        if not result.accepted and result.run is not None and result.run.tail:
            say(f"last {len(result.run.tail)} lines of the test output for {ref}:")
            for line in result.run.tail:
                say(f"  | {line}")
        say(("passed: " if result.accepted else "FAILED: ") + f"{ref}: {result.summary}")
        tested[commit] = result
        verdict.refs.append(result)
    return verdict


def _test_commit(ref: str, commit: str, deploy: DeploySettings, *, git_dir: Path,
                 env: Mapping[str, str], isolation: Isolation = NO_ISOLATION) -> RefVerdict:
    # Under the hook's own environment git sees the quarantined objects; refs are never touched.
    try:
        tar = Git(git_dir, env=dict(env)).archive(commit)
    except GitError as exc:
        return RefVerdict(ref, False, f"cannot read the pushed commit: {exc.message}")
    try:
        run = test_tree(tar, deploy.test_command, commit=commit, env=env, pass_env=deploy.test_pass_env,
                        timeout=deploy.test_timeout.total_seconds(), tail_lines=deploy.output_tail_lines,
                        isolation=isolation, prefix=f"railguard-hook-{commit[:12]}-")
    except TreeUnusable as exc:
        return RefVerdict(ref, False, f"cannot unpack the pushed commit: {exc.reason}")
    except SuiteCommandMissing as exc:
        return RefVerdict(ref, False, exc.message)
    return RefVerdict(ref, run.passed, run.summary(), run)


def run_hook(stdin_text: str, deploy: DeploySettings, *, where: str, git_dir: Path,
             env: Mapping[str, str] = os.environ, say: Callable[[str], None],
             private: Sequence[Path] = ()) -> PushVerdict:
    """What the installed hook does: parse, test, and print one summary line.

    ``private`` are paths the pushed suite must not read besides the deploy secrets' ``*_FILE``
    files (railguard's state directory)."""
    check_suite_command(deploy.test_command, f"{where}.test_command")
    refuse_secrets_in_pass_env(deploy.test_pass_env, [deploy.token_env, deploy.password_env, deploy.webhook_token_env],
                               f"{where}.test_pass_env")
    updates = parse_updates(stdin_text)
    secret_files = [Path(env[f"{var}_FILE"]) for var in (deploy.token_env, deploy.password_env,
                                                           deploy.webhook_token_env) if env.get(f"{var}_FILE")]
    isolation = resolve_isolation(deploy.test_isolation, private=[*secret_files, *private],
                                  read_only=deploy.test_isolation_paths, where=f"{where}.test_isolation")
    if not isolation.isolated and any(d.action == "test" for d in decide(
            updates, deploy.protected_branches, allow_delete=deploy.allow_delete_protected)):
        say(f"WARNING: {isolation.describe()}")
    verdict = check_push(updates, deploy, git_dir=git_dir, env=env, say=say, isolation=isolation)
    rejected = [r for r in verdict.refs if not r.accepted]
    if rejected:
        first = rejected[0]
        more = f" (and {len(rejected) - 1} more ref{'s' * (len(rejected) > 2)})" if len(rejected) > 1 else ""
        say(f"push rejected: {first.ref}: {first.summary}{more}")
    return verdict


# --- install and uninstall ----------------------------------------------------------------------

@dataclass
class Installation:
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
    :mod:`railguard.deploy.hook_main`, the same check as ``railguard hook run`` without the
    rest of the command line.
    """
    command = " ".join(shlex.quote(part) for part in
                       [python, "-m", "railguard.deploy.hook_main", "--config", str(config), "--app", app])
    lines = ["#!/bin/sh", MARKER, "# Tests pushes to protected branches before they land; docs/hook.md."]
    if chain:
        lines += chained_lines(command)
    else:
        lines.append(f"exec {command}")
    return "\n".join(lines) + "\n"


def install_hook(git_dir: Path, *, config: Path, app: str, python: str = sys.executable) -> Installation:
    """Install the hook into ``hooks/pre-receive.d/`` (Forgejo) or ``hooks/pre-receive`` (plain git).

    An existing plain ``pre-receive`` is never overwritten: it is kept as
    ``pre-receive.railguard-chained`` and still runs first, with the same input.
    """
    if not config.is_absolute():
        config = config.resolve()
    hooks = hooks_dir(git_dir)
    owner = repository_owner(git_dir)
    if owner is not None:
        check_owner_can_run(owner, python, config)
    ensure_directory(hooks, owner)
    dispatch_dir = hooks / "pre-receive.d"
    if dispatch_dir.is_dir():
        target = dispatch_dir / HOOK_NAME
        if target.exists():
            raise HookAlreadyInstalled(f"{target} already exists",
                                       hint=f"railguard hook uninstall {git_dir}, then install again")
        write_executable(target, hook_script(python=python, config=config, app=app, chain=False), owner=owner)
        return Installation(target, "pre-receive.d")
    target = hooks / "pre-receive"
    chained = hooks / f"pre-receive{CHAINED_SUFFIX}"
    if target.exists():
        if is_ours(target):
            raise HookAlreadyInstalled(f"railguard's hook is already installed in {target}",
                                       hint=f"railguard hook uninstall {git_dir}, then install again")
        if chained.exists():
            raise ConfigError(f"{chained} exists but {target} is not railguard's",
                              hint="Sort the two hooks out by hand, then install again")
        os.replace(target, chained)
        write_executable(target, hook_script(python=python, config=config, app=app, chain=True), owner=owner)
        return Installation(target, "pre-receive", chained=chained)
    write_executable(target, hook_script(python=python, config=config, app=app, chain=False), owner=owner)
    return Installation(target, "pre-receive")


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
