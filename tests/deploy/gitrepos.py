"""Helpers shared by tests/deploy, tests/hook, tests/smoke and tests/monitor: real git
repositories and the secrets the fake CapRover expects (each test checks these never reach the
output)."""

from __future__ import annotations

import subprocess
from pathlib import Path

APP_TOKEN = "app-token-5ecret-do-not-print"
PASSWORD = "dashboard-pa55word-do-not-print"
WEBHOOK_TOKEN = "webhook-t0ken-do-not-print"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Repo:
    """A work tree whose tests pass or fail depending on a file (like a real suite would)."""

    def __init__(self, path: Path, origin: Path) -> None:
        self.path, self.origin = path, origin

    @classmethod
    def create(cls, root: Path) -> Repo:
        """A bare ``origin.git`` and a work tree ``work`` under ``root``, with one commit (an
        ``index.ts`` and the stand-in suite, :data:`TEST_SCRIPT`) pushed to main."""
        origin, work = root / "origin.git", root / "work"
        subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], check=True)
        subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(work)], check=True)
        for key, value in (("user.name", "Dev"), ("user.email", "dev@example.test"), ("commit.gpgsign", "false")):
            git(work, "config", key, value)
        git(work, "remote", "add", "origin", str(origin))
        repository = cls(work, origin)
        repository.commit("first", {"index.ts": "console.log('v1')\n", "run-tests.sh": TEST_SCRIPT})
        repository.push("main")
        return repository

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        for name, text in (files or {}).items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def push(self, *refs: str) -> None:
        git(self.path, "push", "--quiet", "origin", *(refs or ("main",)))

    def archive(self, ref: str) -> bytes:
        return subprocess.run(["git", "archive", "--format=tar", ref], cwd=self.path, check=True,
                              capture_output=True).stdout

    def sha(self, ref: str = "HEAD") -> str:
        return git(self.path, "rev-parse", f"{ref}^{{commit}}")


TEST_SCRIPT = """#!/bin/sh
# The app's stand-in test suite: fails when FAIL exists, prints a recognisable last line.
echo "bun test v1.1 (stand-in)"
if [ -f FAIL ]; then
  echo "tasks.test.ts: expected 3 tasks, got 2"
  echo "1 fail"
  exit 1
fi
echo "12 pass"
"""
