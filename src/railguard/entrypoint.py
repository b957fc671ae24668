"""The ``railguard`` console script.

``railguard probe`` is what a HEALTHCHECK line may call every interval for the life of a
container, so it is dispatched here, before the full command line (click, rich, pydantic and
every command module) is imported: that import alone costs far more than the probe itself
(bench/probe.py). Everything else goes to :func:`railguard.cli.main` unchanged.

Python's cyclic garbage collector is off while the command line starts, and frozen when the
process ends (docs/cli.md, start-up): a start-up builds modules, classes and pydantic's schemas,
which live as long as the process, so each collection during it walks a growing heap and frees
next to nothing; and the collection at exit walks it all once more for a process about to end.
Together that was a fifth of ``railguard status``'s time. The command's own work runs with the
collector on (:func:`railguard.cli.root.collect_garbage_from_here`, as each command starts), and
at exit only the collector is skipped: atexit handlers, ``finally`` blocks and the flushing of
logs and output all run as usual, and objects are still freed by reference counting. (Only
objects left in reference cycles at exit are then not finalized; railguard's durable writes do
not wait for that: :mod:`railguard.durable` fsyncs and closes each file where it writes it.)
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        from railguard.probe import main as probe

        sys.exit(probe(sys.argv[2:]))
    gc.disable()
    try:
        from railguard.cli import main as cli_main

        cli_main()
    finally:
        gc.freeze()  # every object now lives until the process ends: no collection needs to walk them
