"""The restore drill: prove that a backup restores and boots the app (docs/drill.md)."""

from railguard.drill.launch import DrillNotConfigured, DrillTouchesProduction, LaunchPlan, plan_launch
from railguard.drill.runner import LOG_NAME, DrillReport, DrillStepFailed, Step, run_drill
from railguard.drill.selection import BackupNotFound

__all__ = [
    "LOG_NAME",
    "BackupNotFound",
    "DrillNotConfigured",
    "DrillReport",
    "DrillStepFailed",
    "DrillTouchesProduction",
    "LaunchPlan",
    "Step",
    "plan_launch",
    "run_drill",
]
