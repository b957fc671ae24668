"""The restore drill: prove that a backup restores and boots the app (docs/drill.md).

The names below are imported on first use (PEP 562), as in :mod:`railguard.deploy`:
``railguard status`` reads drill.log through :mod:`railguard.drill.log` and needs nothing
else of the drill.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DrillNotConfigured": "launch", "DrillTouchesProduction": "launch", "LaunchPlan": "launch",
    "plan_launch": "launch", "LOG_NAME": "log", "DrillReport": "runner", "DrillStepFailed": "runner",
    "Step": "runner", "run_drill": "runner", "BackupNotFound": "selection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
