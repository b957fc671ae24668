"""The ``railguard`` command line: a thin adapter over the library.

Each command module parses its flags, calls one library function and renders the result.
No SQL, HTTP or retention logic lives under ``railguard.cli``.
"""

from railguard.cli.root import cli, main

__all__ = ["cli", "main"]
