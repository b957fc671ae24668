"""The ``railguard`` console script.

``railguard probe`` is what a HEALTHCHECK line may call every interval for the life of a
container, so it is dispatched here, before the full command line (click, rich, pydantic and
every command module) is imported: that import alone costs far more than the probe itself
(bench/probe.py). Everything else goes to :func:`railguard.cli.main` unchanged.
"""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        from railguard.probe import main as probe

        sys.exit(probe(sys.argv[2:]))
    from railguard.cli import main as cli_main

    cli_main()
