"""The entry point the installed hook runs: ``python -m railguard.deploy.hook.main --config PATH --app NAME``.

It does what ``railguard hook run`` does, through the same library call, but imports only the
configuration and the hook. Why a second door: git runs the hook on every push, so a bug in
any unrelated command module (or a slow import) would otherwise reject or slow every push to
every branch. Errors print like the CLI's (``error: ...`` and ``hint: ...``) with the same exit
codes; a non-zero exit rejects the push.

Hooks installed before the hook had its own package run ``python -m railguard.deploy.hook_main``:
that module stays, a shim that calls :func:`main` here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from railguard.config import find_config, load_settings
from railguard.deploy.hook.run import run_hook
from railguard.errors import ExitCode, RailguardError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="railguard-pre-receive", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--app")
    arguments = parser.parse_args(argv)

    def say(line: str) -> None:
        print(f"railguard: {line}", file=sys.stderr, flush=True)

    try:
        settings = load_settings(find_config(arguments.config))
        name, app = settings.app(arguments.app)
        verdict = run_hook(sys.stdin.read(), app.deploy, where=f"apps.{name}.deploy", git_dir=Path.cwd(),
                           env=os.environ, say=say,
                           private=[settings.state_dir])
    except RailguardError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK if verdict.accepted else ExitCode.CHECK_FAILED)


if __name__ == "__main__":
    sys.exit(main())
