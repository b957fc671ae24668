"""The restore drill: prove that a backup restores and boots the app (docs/drill.md).

The names below are imported on first use (PEP 562), as in :mod:`railguard.deploy`:
``railguard status`` reads drill.log through :mod:`railguard.drill.log` and needs nothing
else of the drill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from railguard import lazy

_EXPORTS = {
    "DrillNotConfigured": "launch", "DrillTouchesProduction": "launch", "LaunchPlan": "launch",
    "plan_launch": "launch", "LOG_NAME": "log", "DrillReport": "runner", "DrillStepFailed": "boot",
    "Step": "boot", "run_drill": "runner", "BackupNotFound": "selection",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names for mypy, which would otherwise see each as Any
    # ("X as X": exported, since mypy cannot read the computed __all__)
    from railguard.drill.launch import DrillNotConfigured as DrillNotConfigured
    from railguard.drill.launch import DrillTouchesProduction as DrillTouchesProduction
    from railguard.drill.launch import LaunchPlan as LaunchPlan
    from railguard.drill.launch import plan_launch as plan_launch
    from railguard.drill.log import LOG_NAME as LOG_NAME
    from railguard.drill.runner import DrillReport as DrillReport
    from railguard.drill.boot import DrillStepFailed as DrillStepFailed
    from railguard.drill.boot import Step as Step
    from railguard.drill.runner import run_drill as run_drill
    from railguard.drill.selection import BackupNotFound as BackupNotFound

__getattr__ = lazy.exports(__name__, _EXPORTS)
