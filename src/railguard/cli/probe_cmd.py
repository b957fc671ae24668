"""``railguard probe URL``: the same probe as ``python -m railguard.probe``.

The arguments go to :func:`railguard.probe.main` untouched, so both entry points share one
parser and one exit-code rule: 0 only for the expected status, 1 for everything else,
usage errors included (click would exit 2 or 3; Docker reserves 2). For the same reason it is
the one command without the global options (``--config``, ``--json``, ...): it reads no
configuration, and every word after ``probe`` is the probe's own.
"""

from __future__ import annotations

import click

from railguard import probe
from railguard.cli.root import cli


@cli.command("probe", cls=click.Command, context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                               "help_option_names": []},
             add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def probe_command(args: tuple[str, ...]) -> int:
    """Strict HTTP check for a Docker HEALTHCHECK (exit 0 or 1).

    Exit 0 only when GET URL answers exactly the expected status (default 200); exit 1 for
    anything else. Redirects are not followed. Run `railguard probe --help` for the options.
    (click never shows this text: `--help` is the probe's own; the first line is the summary in
    `railguard --help`.)"""
    return probe.main(list(args))

