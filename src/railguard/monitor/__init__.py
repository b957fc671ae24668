"""``railguard monitor``: an uptime monitor with a pure transition core.

* :mod:`state`: the state machine (UP/DOWN after N failures, RECOVERED after M successes),
  a pure function of (state, check, policy, silenced).
* :mod:`maintenance`: cron + duration windows that silence alerts.
* :mod:`control`: what other processes say: deploy windows (a deploy holds its app's alerts; a
  DOWN just after it names it) and pauses (``railguard monitor pause``).
* :mod:`probe`: one strict HTTP check.
* :mod:`store`: SQLite persistence with bounded history.
* :mod:`runner`: concurrent rounds, alerts, metrics.
* :mod:`report`: ``monitor list`` (uptime over 24 h / 7 d / 30 d).
"""

from railguard.monitor.probe import Target, probe
from railguard.monitor.runner import Monitor, RoundReport, targets_from_settings
from railguard.monitor.state import Alert, CheckResult, Policy, TargetState, step
from railguard.monitor.control import DeployWindow, Pause
from railguard.monitor.store import (
    MonitorStore, close_deploy_window, open_deploy_window, pause_target, resume_target,
)

__all__ = ["Alert", "CheckResult", "DeployWindow", "Monitor", "MonitorStore", "Pause", "Policy", "RoundReport",
           "Target", "TargetState", "close_deploy_window", "open_deploy_window", "pause_target", "probe",
           "resume_target", "step", "targets_from_settings"]
