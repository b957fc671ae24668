"""``railguard monitor``: an uptime monitor with a pure transition core.

* :mod:`state`: the state machine (UP/DOWN after N failures, RECOVERED after M successes),
  a pure function of (state, check, policy, silenced).
* :mod:`maintenance`: cron + duration windows that silence alerts.
* :mod:`control`: what other processes say: deploy windows (a deploy holds its app's alerts; a
  DOWN just after it names it) and pauses (``railguard monitor pause``).
* :mod:`targets`: what it watches, from the configuration.
* :mod:`probe`: one strict HTTP check.
* :mod:`store`: SQLite persistence with bounded history.
* :mod:`runner`: concurrent rounds, alerts, metrics.
* :mod:`report`: ``monitor list`` (uptime over 24 h / 7 d / 30 d).

The names below are imported on first use (PEP 562, :mod:`railguard.lazy`): ``railguard
status`` reads the store through :mod:`report` and needs neither the HTTP probe (http.client,
ssl) nor the runner and its notifications. The function ``probe`` is imported from its module
(``railguard.monitor.probe``), whose name it shares: a package attribute of that name is the
module once anything has imported it, so the package does not offer the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from railguard import lazy

_EXPORTS = {
    "Target": "targets", "Monitor": "runner", "RoundReport": "runner",
    "targets_from_settings": "targets", "Alert": "state", "CheckResult": "state", "Policy": "state",
    "TargetState": "state", "step": "state", "MonitorStore": "store",
    "DeployWindow": "control", "Pause": "control", "close_deploy_window": "store", "open_deploy_window": "store",
    "pause_target": "store", "resume_target": "store",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names for mypy, which would otherwise see each as Any
    # ("X as X": exported, since mypy cannot read the computed __all__)
    from railguard.monitor.targets import Target as Target
    from railguard.monitor.runner import Monitor as Monitor
    from railguard.monitor.runner import RoundReport as RoundReport
    from railguard.monitor.targets import targets_from_settings as targets_from_settings
    from railguard.monitor.state import Alert as Alert
    from railguard.monitor.state import CheckResult as CheckResult
    from railguard.monitor.state import Policy as Policy
    from railguard.monitor.state import TargetState as TargetState
    from railguard.monitor.state import step as step
    from railguard.monitor.control import DeployWindow as DeployWindow
    from railguard.monitor.control import Pause as Pause
    from railguard.monitor.store import MonitorStore as MonitorStore
    from railguard.monitor.store import close_deploy_window as close_deploy_window
    from railguard.monitor.store import open_deploy_window as open_deploy_window
    from railguard.monitor.store import pause_target as pause_target
    from railguard.monitor.store import resume_target as resume_target

__getattr__ = lazy.exports(__name__, _EXPORTS)
