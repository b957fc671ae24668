"""Exit codes and the error hierarchy every command shares.

Each error carries its exit code, a one-line message and, where possible, a hint that tells
the user what to do next. The CLI prints ``error: <message>`` and ``hint: <hint>`` and exits
with the code; nothing else about an error reaches the terminal (no tracebacks for expected
failures).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes. Documented in docs/exit-codes.md and pinned by a test."""

    OK = 0
    #: The job is done, but something needs attention (a destination failed, a warning check).
    WARNING = 1
    #: The job failed; nothing was damaged.
    ERROR = 2
    #: Bad command line or configuration; nothing was attempted.
    USAGE = 3
    #: A backup or copy failed verification (integrity_check, hash, decompression).
    VERIFY_FAILED = 4
    #: Another run holds the lock, or the database stayed busy past the timeout.
    BUSY = 5
    #: The named database, backup, app or file does not exist.
    NOT_FOUND = 6
    #: A check ran and failed (smoke check, drill, doctor findings, flagged status).
    CHECK_FAILED = 7
    #: A deploy was replaced by another deploy (dashboard, webhook, CLI) before it went live.
    SUPERSEDED = 8
    #: Interrupted by SIGINT/SIGTERM; cleaned up.
    INTERRUPTED = 130

    @classmethod
    def describe(cls) -> str:
        """The table shown at the end of ``railguard --help``."""
        return "\n".join(f"{code.value:>4}  {code.name.lower().replace('_', '-')}: {_MEANINGS[code]}"
                         for code in cls)


_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.WARNING: "done, with a warning that needs attention",
    ExitCode.ERROR: "failed; nothing was damaged",
    ExitCode.USAGE: "bad arguments or configuration",
    ExitCode.VERIFY_FAILED: "a backup failed verification",
    ExitCode.BUSY: "locked by another run, or the database stayed busy",
    ExitCode.NOT_FOUND: "the named database, backup or file does not exist",
    ExitCode.CHECK_FAILED: "a check ran and failed",
    ExitCode.SUPERSEDED: "a deploy was superseded by another deploy before it went live",
    ExitCode.INTERRUPTED: "interrupted; cleaned up",
}


class RailguardError(Exception):
    """Base of every expected failure. ``str(error)`` is the one-line message."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(RailguardError):
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The configuration file (or a flag overriding it) is invalid."""


class NotFound(RailguardError):
    exit_code = ExitCode.NOT_FOUND


class Busy(RailguardError):
    exit_code = ExitCode.BUSY


class VerifyFailed(RailguardError):
    exit_code = ExitCode.VERIFY_FAILED


class CheckFailed(RailguardError):
    exit_code = ExitCode.CHECK_FAILED
