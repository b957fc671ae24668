"""``railguard monitor``: an uptime monitor with a pure transition core.

* :mod:`state`: the state machine (UP/DOWN after N failures, RECOVERED after M successes),
  a pure function of (state, check, policy, silenced).
* :mod:`maintenance`: cron + duration windows that silence alerts.
* :mod:`probe`: one strict HTTP check.
* :mod:`store`: SQLite persistence with bounded history.
* :mod:`runner`: concurrent rounds, alerts, metrics.
* :mod:`report`: ``monitor list`` (uptime over 24 h / 7 d / 30 d).
"""

from railguard.monitor.probe import Target, probe
from railguard.monitor.runner import Monitor, RoundReport, targets_from_settings
from railguard.monitor.state import Alert, CheckResult, Policy, TargetState, step
from railguard.monitor.store import MonitorStore

__all__ = ["Alert", "CheckResult", "Monitor", "MonitorStore", "Policy", "RoundReport", "Target", "TargetState",
           "probe", "step", "targets_from_settings"]
