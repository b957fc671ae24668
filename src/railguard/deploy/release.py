"""Option A: ``railguard release`` cuts a tag and deploys exactly that tag's commit.

CapRover never builds a tag push from its webhook (docs/deploy.md), so "deploy by tag" means
railguard itself uploads ``git archive`` of the tagged commit with its SHA as ``gitHash``.

The flow: checks (release branch, clean tree, not behind the remote) → the test suite → an
annotated tag ``vX.Y.Z`` → push the tag → deploy that commit → the post-deploy steps.
:func:`prepare_release` does the checks and plans the rest; ``--dry-run`` prints the plan.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import total_ordering
from pathlib import Path

from railguard.config import DeploySettings
from railguard.deploy.actions import DeployJob, DeployReport, deploy_commit_holding_lock, locked_flow
from railguard.deploy.git import Git, GitError, git_environment_without_git_vars
from railguard.deploy.suite import SuiteRun, check_suite_command, run_suite
from railguard.errors import CheckFailed, UsageError

BUMPS = ("patch", "minor", "major")


class ReleaseRefused(UsageError):
    """A precondition of a release does not hold; nothing was changed."""


class ReleaseTestsFailed(CheckFailed):
    def __init__(self, message: str, *, hint: str | None = None, run: SuiteRun) -> None:
        super().__init__(message, hint=hint)
        self.run = run


@total_ordering
@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int

    _FORM = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")

    @classmethod
    def parse(cls, text: str, prefix: str = "") -> SemVer | None:
        if prefix and text.startswith(prefix):
            text = text[len(prefix):]
        match = cls._FORM.fullmatch(text)
        return cls(*(int(part) for part in match.groups())) if match else None

    def bump(self, part: str) -> SemVer:
        if part == "major":
            return SemVer(self.major + 1, 0, 0)
        if part == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        return SemVer(self.major, self.minor, self.patch + 1)

    def _key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def latest_release(tags: list[str], prefix: str) -> SemVer | None:
    """The highest ``<prefix>X.Y.Z`` tag; tags of any other shape are not releases."""
    versions = [v for v in (SemVer.parse(t, prefix) for t in tags if t.startswith(prefix)) if v is not None]
    return max(versions, default=None)


def next_version(latest: SemVer | None, request: str, prefix: str) -> SemVer:
    """Pure: the version ``request`` (``patch``/``minor``/``major`` or ``X.Y.Z``) asks for."""
    if request in BUMPS:
        return (latest or SemVer(0, 0, 0)).bump(request)
    wanted = SemVer.parse(request, prefix) or SemVer.parse(request, "v")
    if wanted is None:
        raise UsageError(f"{request!r} is not a version: give patch, minor, major or X.Y.Z",
                         hint="Try: railguard release patch")
    if latest is not None and not wanted > latest:
        raise ReleaseRefused(f"{prefix}{wanted} is not greater than the latest release {prefix}{latest}",
                             hint=f"Give a higher version, e.g. railguard release {latest.bump('patch')}")
    return wanted


@dataclass
class ReleasePlan:
    repository: Path
    branch: str
    remote: str
    commit: str
    latest: SemVer | None
    version: SemVer
    tag: str
    test_command: list[str]
    caprover_app: str
    caprover_url: str | None
    #: Notes from the checks that did not stop the release (e.g. unpushed commits).
    notes: list[str] = field(default_factory=list)

    def steps(self) -> list[str]:
        """Every step the release takes, in order, in words (what ``--dry-run`` prints)."""
        return [
            f"check: on {self.branch}, working tree clean, not behind {self.remote}/{self.branch}",
            f"run the tests: {' '.join(self.test_command)} (in {self.repository})",
            f"tag {self.commit[:12]} as {self.tag} (annotated; "
            + (f"latest was {self.tag_prefix}{self.latest})" if self.latest else "the first release tag)"),
            f"push {self.tag} to {self.remote}",
            f"deploy {self.commit[:12]} (git archive of {self.tag}, gitHash {self.commit}) to CapRover app "
            f"{self.caprover_app} at {self.caprover_url}",
            "run the post-deploy checks",
        ]

    @property
    def tag_prefix(self) -> str:
        return self.tag[: len(self.tag) - len(str(self.version))]


def prepare_release(git: Git, deploy: DeploySettings, request: str, *, caprover_app: str,
                    where: str) -> ReleasePlan:
    """Run the checks and plan the release. Changes nothing but the remote-tracking refs (fetch)."""
    git.ensure_repository()
    test_command = check_suite_command(deploy.test_command, f"{where}.test_command")
    branch = git.current_branch()
    if branch != deploy.release_branch:
        raise ReleaseRefused(f"releases are cut from {deploy.release_branch}, and HEAD is "
                             f"{'on ' + branch if branch else 'detached'}",
                             hint=f"git switch {deploy.release_branch}")
    dirty = git.dirty_paths()
    if dirty:
        more = f" and {len(dirty) - 1} more" if len(dirty) > 1 else ""
        raise ReleaseRefused(f"the working tree has uncommitted changes ({dirty[0]}{more})",
                             hint="Commit or stash them: a release is exactly a commit")
    git.fetch(deploy.remote)
    upstream = f"refs/remotes/{deploy.remote}/{branch}"
    if not git.has_ref(upstream):
        raise ReleaseRefused(f"{deploy.remote}/{branch} does not exist",
                             hint=f"Push the branch first: git push -u {deploy.remote} {branch}")
    behind = git.count(f"HEAD..{upstream}")
    if behind:
        raise ReleaseRefused(f"{branch} is {behind} commit{'s' * (behind != 1)} behind {deploy.remote}/{branch}",
                             hint="git pull --ff-only, run the tests, then release")
    notes = []
    ahead = git.count(f"{upstream}..HEAD")
    if ahead:
        notes.append(f"{branch} is {ahead} commit{'s' * (ahead != 1)} ahead of {deploy.remote}/{branch}: the tag "
                     f"carries them to {deploy.remote}, the branch stays where it is")
    commit = git.resolve_commit("HEAD")
    tags = git.tags(f"{deploy.tag_prefix}*")
    latest = latest_release(tags, deploy.tag_prefix)
    version = next_version(latest, request, deploy.tag_prefix)
    tag = f"{deploy.tag_prefix}{version}"
    if tag in tags:
        raise ReleaseRefused(f"the tag {tag} already exists", hint="Pick the next version")
    return ReleasePlan(repository=git.path, branch=branch, remote=deploy.remote, commit=commit, latest=latest,
                       version=version, tag=tag, test_command=test_command, caprover_app=caprover_app,
                       caprover_url=deploy.caprover_url, notes=notes)


@dataclass
class ReleaseReport:
    plan: ReleasePlan
    tests: SuiteRun
    deploy: DeployReport


def run_release(plan: ReleasePlan, job: DeployJob, deploy: DeploySettings, *,
                on_test_line: Callable[[str], None] | None = None) -> ReleaseReport:
    """Test, tag, push and deploy, holding the app's deploy lock throughout (a second release
    could otherwise tag the same commit). A failure before the push leaves no tag behind."""
    with locked_flow(job, "release", plan.tag):
        return _release(plan, job, deploy, on_test_line)


def _release(plan: ReleasePlan, job: DeployJob, deploy: DeploySettings,
             on_test_line: Callable[[str], None] | None) -> ReleaseReport:
    git = job.git
    tests = run_suite(plan.test_command, cwd=plan.repository, timeout=deploy.test_timeout.total_seconds(),
                      env=git_environment_without_git_vars(), tail_lines=deploy.output_tail_lines,
                      on_line=on_test_line)
    if not tests.passed:
        raise ReleaseTestsFailed(f"tests failed, nothing was tagged: {tests.summary()}",
                                 hint="Fix the failing tests and run the release again", run=tests)
    git.run("tag", "--annotate", "--message", f"Release {plan.tag}", "--end-of-options", plan.tag, plan.commit)
    pushed = git.run("push", "--quiet", "--end-of-options", plan.remote, f"refs/tags/{plan.tag}:refs/tags/{plan.tag}",
                     check=False)
    if pushed.returncode != 0:
        git.run("tag", "--delete", "--end-of-options", plan.tag, check=False)
        detail = pushed.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"pushing {plan.tag} to {plan.remote} failed: {detail[-1] if detail else 'no detail'}",
                       hint="The local tag was removed again; fix the remote and run the release again")
    report = deploy_commit_holding_lock(job, plan.tag, kind="release", tag=plan.tag)
    return ReleaseReport(plan=plan, tests=tests, deploy=report)
