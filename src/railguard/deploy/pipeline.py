"""Test a pushed tree: the one way the pre-receive hook, the gate's pre-receive check and the
gate's worker run the app's suite on code somebody pushed.

The order of work, and why:

1. A private directory from ``mkdtemp`` (0700, a fresh name nobody can have planted) holding
   ``tree`` and ``home``: the suite may write only there, and a sandbox sees only that.
2. ``git archive``'s tar extracted into ``tree`` by :func:`~railguard.deploy.suite.extract_tree`
   (no member outside it, whatever the Python version).
3. The suite's environment by ONE rule, :func:`suite_environment`: an allow-list (``PATH``,
   ``LANG``, a private ``HOME``/``TMPDIR``, ``CI=true``, ``RAILGUARD_COMMIT``) plus the variables
   the configuration names in ``pass_env``. Nothing else reaches pushed code: not a secret (the
   configuration refuses to name one, :func:`refuse_secrets_in_pass_env`) and not a ``GIT_*``
   variable (under the hook those point at the quarantined objects and the real repository).
4. :func:`~railguard.deploy.suite.run_suite` with the caller's isolation, timeout, output
   callback and cancellation.
5. The directory goes on every path, verdict or not.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from railguard.deploy.isolation import NO_ISOLATION, Isolation
from railguard.deploy.suite import SuiteRun, extract_tree, run_suite
from railguard.errors import ConfigError, RailguardError

_SHA_CHARS = frozenset("0123456789abcdef")


class TreeUnusable(RailguardError):
    """The pushed tree could not be laid out to test (not a usable tar, a disk error)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        #: The underlying problem in its own words, for callers that phrase their own line.
        self.reason = reason


def is_full_sha(text: str) -> bool:
    """A full lower-case object name: 40 hex digits (SHA-1) or 64 (SHA-256 repositories)."""
    return len(text) in (40, 64) and set(text) <= _SHA_CHARS


def refuse_secrets_in_pass_env(pass_env: Sequence[str], secret_vars: Collection[str | None], where: str) -> None:
    """Configuration check: ``pass_env`` must not hand a secret (or its ``*_FILE``) to the suite."""
    secrets = {name for name in secret_vars if name}
    leaked = sorted(v for v in pass_env if v in secrets or v.removesuffix("_FILE") in secrets)
    if leaked:
        raise ConfigError(f"{where} would hand the secret {leaked[0]} to the test suite",
                          hint="Remove it: tests run without railguard's secrets")


def suite_environment(env: Mapping[str, str], pass_env: Sequence[str], *, home: Path,
                      commit: str) -> dict[str, str]:
    """Only what a test suite needs to start, plus the variables the config names; no secrets,
    no ``GIT_*``."""
    result = {"PATH": env.get("PATH", os.defpath), "LANG": env.get("LANG", "C.UTF-8"), "HOME": str(home),
              "TMPDIR": str(home), "CI": "true", "RAILGUARD_COMMIT": commit}
    for name in pass_env:
        if name in env and not name.startswith("GIT_"):
            result[name] = env[name]
    return result


def test_tree(tar: bytes, command: Sequence[str], *, commit: str, env: Mapping[str, str],
              pass_env: Sequence[str] = (), timeout: float, tail_lines: int = 40,
              isolation: Isolation = NO_ISOLATION, on_line: Callable[[str], None] | None = None,
              cancel: threading.Event | None = None, prefix: str = "railguard-test-") -> SuiteRun:
    """Run ``command`` on a fresh copy of the tree in ``tar`` (``git archive`` of ``commit``).

    Raises :class:`TreeUnusable` when the tree cannot be laid out and
    :class:`~railguard.deploy.suite.SuiteCommandMissing` when the command cannot run; a suite
    that ran, passed or not, is the returned :class:`~railguard.deploy.suite.SuiteRun`."""
    try:
        workdir = Path(tempfile.mkdtemp(prefix=prefix))
    except OSError as exc:
        raise TreeUnusable(f"cannot make a directory to test {commit[:12]} in: {exc}", reason=str(exc)) from exc
    try:
        tree, home = workdir / "tree", workdir / "home"
        try:
            tree.mkdir()
            home.mkdir()
            with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
                extract_tree(archive, tree)
        except (tarfile.TarError, OSError) as exc:
            raise TreeUnusable(f"cannot unpack the pushed commit {commit[:12]}: {exc}", reason=str(exc)) from exc
        return run_suite(command, cwd=tree, timeout=timeout,
                         env=suite_environment(env, pass_env, home=home, commit=commit), tail_lines=tail_lines,
                         on_line=on_line, cancel=cancel, isolation=isolation, root=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# A function named test_* is not a test: pytest must not collect it where it is imported.
test_tree.__test__ = False  # type: ignore[attr-defined]  # an attribute set on a function, for pytest
