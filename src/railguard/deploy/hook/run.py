"""What the pre-receive hook does on every push: read git's ref lines, decide which refs to
test, test each pushed commit, and give the verdict (``railguard hook run`` and the installed
hook's entry point, :mod:`railguard.deploy.hook.main`, both call :func:`run_hook`).

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
"""

from __future__ import annotations

import fnmatch
import os
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from railguard.config import DeploySettings
from railguard.deploy.git import ZERO_SHA, Git, GitError
from railguard.deploy.isolation import NO_ISOLATION, Isolation, resolve_isolation
from railguard.deploy.pipeline import TreeUnusable, is_full_sha, refuse_secrets_in_pass_env, test_tree
from railguard.deploy.suite import SuiteCommandMissing, SuiteRun, check_suite_command
from railguard.errors import UsageError


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
