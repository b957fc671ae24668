"""The git operations deploys, releases and the hook need, run through the ``git`` command.

Every call passes its arguments as a list (no shell), so ref names that contain ``;``, ``$()``
or quotes are only ever data. Refs given by a user are checked with ``--end-of-options`` so a
ref that starts with ``-`` cannot turn into an option.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from railguard.errors import NotFound, RailguardError, UsageError

ZERO_SHA = "0" * 40


class GitError(RailguardError):
    """A git command failed for a reason railguard did not expect."""


class NotARepository(UsageError):
    pass


class RefNotFound(NotFound):
    pass


@dataclass(frozen=True)
class Git:
    """A repository: a work tree or a bare ``GIT_DIR``."""

    path: Path
    env: Mapping[str, str] | None = None

    def run(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        try:
            done = subprocess.run(["git", *args], cwd=self.path, env=self.env, input=input,
                                  capture_output=True, check=False)
        except FileNotFoundError as exc:
            raise GitError("git is not installed", hint="Install git (apt-get install git)") from exc
        if check and done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"git {args[0]} failed in {self.path}: {message[-1] if message else 'exit ' + str(done.returncode)}")
        return done

    def text(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()

    def ensure_repository(self) -> None:
        if not self.path.is_dir():
            raise NotARepository(f"{self.path} does not exist", hint="Give the path of a git repository")
        done = self.run("rev-parse", "--git-dir", check=False)
        if done.returncode != 0:
            raise NotARepository(f"{self.path} is not a git repository",
                                 hint="Point deploy.repository (or --repo) at a clone of the app")

    def resolve_commit(self, ref: str) -> str:
        """The full SHA of the commit ``ref`` names (a tag is peeled to its commit)."""
        done = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False)
        if done.returncode != 0:
            raise RefNotFound(f"{ref!r} does not name a commit in {self.path}",
                              hint="Check the branch, tag or SHA (git log --oneline)")
        return done.stdout.decode().strip()

    def archive(self, commit: str) -> bytes:
        """The tree of ``commit`` as an uncompressed tar, exactly what ``git archive`` makes.

        Held in memory: the app's repository is small (a few MiB), and the upload needs the
        whole body to compute its length anyway.
        """
        return self.run("archive", "--format=tar", commit).stdout

    def current_branch(self) -> str | None:
        done = self.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        return done.stdout.decode().strip() if done.returncode == 0 else None

    def dirty_paths(self) -> list[str]:
        # Not self.text(): stripping would eat the leading space of " M path".
        lines = self.run("status", "--porcelain", "--untracked-files=normal").stdout.decode()
        return [line[3:] for line in lines.splitlines() if line]

    def tags(self, pattern: str) -> list[str]:
        return [t for t in self.text("tag", "--list", pattern).splitlines() if t]

    def fetch(self, remote: str) -> None:
        done = self.run("fetch", "--quiet", "--tags", "--end-of-options", remote, check=False)
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"git fetch {remote} failed: {detail[-1] if detail else 'exit ' + str(done.returncode)}",
                           hint=f"Check that the remote {remote!r} is reachable (git remote -v)")

    def count(self, revision_range: str) -> int:
        return int(self.text("rev-list", "--count", revision_range))

    def has_ref(self, ref: str) -> bool:
        return self.run("rev-parse", "--verify", "--quiet", "--end-of-options", ref, check=False).returncode == 0

    def short(self, sha: str) -> str:
        return sha[:12]


def git_environment_without_git_vars(base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment minus every ``GIT_*`` variable.

    Inside a pre-receive hook git exports GIT_DIR, GIT_QUARANTINE_PATH, GIT_OBJECT_DIRECTORY
    and GIT_ALTERNATE_OBJECT_DIRECTORIES; a test suite that runs git itself would otherwise
    operate on the server's repository (docs: git's githooks, "quarantine environment").
    """
    return {key: value for key, value in base.items() if not key.startswith("GIT_")}
