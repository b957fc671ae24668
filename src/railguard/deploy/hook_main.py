"""A shim for hooks installed before the pre-receive hook had its own package: they run
``python -m railguard.deploy.hook_main``, and keep working. The entry point is
:mod:`railguard.deploy.hook.main` (what ``railguard hook install`` writes now); this module only
calls it, and imports nothing else.
"""

from __future__ import annotations

import sys

from railguard.deploy.hook.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
