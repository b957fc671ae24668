"""The monitor's two deploy steps: open the app's deploy window before the platform is asked,
close it after the smoke check (:mod:`railguard.monitor.control` says what the window does).

The window is opened by the *last* pre-deploy step, after the snapshot and the rehearsal, so a
long rehearsal (or one that blocks the deploy) never mutes the monitor; it is closed by the step
after the smoke check, so the restart and the new process's first checks are covered. It is
bounded by ``[monitor] deploy_window`` from its opening: a deploy that fails at the platform
(the post-deploy steps do not run then) or dies between the two steps releases the monitor by
itself at that bound, unless the monitor learns sooner that the deploy did not go live
(:func:`deploy_outcome`, which ``railguard monitor`` hands the monitor: it reads the deploy
history, which the monitor itself may not import).

Neither step ever blocks or fails a deploy: holding alerts is a courtesy to whoever reads them,
not a condition of the deploy. An app the monitor does not watch, or a monitor file that stays
busy, makes the step *skipped*, with the reason (a busy file also says the monitor may alert
during the restart); the deploy goes on either way.

This module lives in :mod:`railguard.rehearsal` because it joins the deploy side (the steps'
contexts) and the monitor, which :mod:`railguard.deploy` may not import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from railguard.config import Settings
from railguard.deploy.state import DeployState, state_path
from railguard.deploy.steps import PostDeployContext, PreDeployContext, StepResult, pre_deploy_step
from railguard.errors import ConfigError, RailguardError
from railguard.logfmt import format_line
from railguard.monitor import DeployWindow, close_deploy_window, open_deploy_window, targets_from_settings
from railguard.values import describe_duration

log = logging.getLogger("railguard.monitor")

#: The key of :attr:`PreDeployContext.facts` that hands the opened window to the closing step.
FACT = "deploy_window"
NAME = "monitor"


@pre_deploy_step(NAME)
def open_window_step(context: PreDeployContext) -> StepResult:
    """Hold the DOWN alerts of the app's targets until :func:`close_window_step` (or the bound)."""
    app = context.app_name
    watched = _watched(context.settings, app)
    if watched is not None:
        return StepResult.skip(NAME, watched)
    now = context.clock()
    until = now + context.settings.monitor.deploy_window
    try:
        window = open_deploy_window(context.settings.state_dir, app, context.deploy_id, context.commit,
                                    context.kind, until, now=now)
    except RailguardError as exc:
        log.warning(format_line({"event": "deploy_window_not_opened", "app": app, "deploy": context.deploy_id,
                                 "reason": exc.message}))
        return StepResult.skip(NAME, f"{exc.message}; the monitor may alert during the restart")
    context.facts[FACT] = window
    return StepResult(NAME, True, f"no DOWN alert for {app} until the smoke check is done "
                                  f"(at most {describe_duration(context.settings.monitor.deploy_window)})",
                      details=window.as_dict())


def close_window_step(context: PostDeployContext) -> StepResult:
    """End the deploy window: from now a DOWN is alerted again, naming the deploy for ``deploy_grace``."""
    opened = context.facts.get(FACT)
    if not isinstance(opened, DeployWindow):
        return StepResult.skip(NAME, "no deploy window was opened for this deploy")
    try:
        closed = close_deploy_window(context.settings.state_dir, opened.app, opened.deploy_id, now=context.clock())
    except RailguardError as exc:
        log.warning(format_line({"event": "deploy_window_not_closed", "app": opened.app,
                                 "deploy": opened.deploy_id, "reason": exc.message}))
        return StepResult.skip(NAME, f"{exc.message}; the window ends by itself at {opened.until.isoformat()}")
    if closed is None:  # the monitor's file lost it (replaced, or compacted): nothing holds alerts
        return StepResult.skip(NAME, "the deploy window was no longer recorded")
    grace = context.settings.monitor.deploy_grace
    return StepResult(NAME, True, f"{opened.app} alerts again; a DOWN in the next {describe_duration(grace)} "
                                  f"names {closed.describe()}",
                      details=closed.as_dict())


def deploy_outcome(settings: Settings) -> Callable[[DeployWindow], datetime | None]:
    """For the monitor (:data:`railguard.monitor.runner.DeployOutcome`): when a window's deploy
    ended without going live, read from the deploy history. A deploy that failed or was
    superseded at the platform runs no post-deploy step, so nothing else would close its window
    before its bound. None while it runs, once it went live (the closing step ends the window),
    or when the history cannot be read (the bound still holds)."""

    def ended(window: DeployWindow) -> datetime | None:
        app = settings.apps.get(window.app)
        if app is None:
            return None
        path = state_path(settings.state_dir, app.deploy.state_file)
        if not path.exists():
            return None
        try:
            history = DeployState(path).history(window.app)
        except RailguardError as exc:
            log.warning(format_line({"event": "deploy_history_unreadable", "app": window.app, "reason": exc.message}))
            return None
        record = next((record for record in history if record.id == window.deploy_id), None)
        if record is None or record.finished_at is None or record.is_live_candidate:
            return None
        return record.finished_at

    return ended


def _watched(settings: Settings, app: str) -> str | None:
    """None when the monitor watches a target of ``app``, else why the window is not opened."""
    try:
        targets = targets_from_settings(settings)
    except ConfigError as exc:
        return f"the monitor watches nothing ({exc.message})"
    if not any(target.app == app for target in targets):
        return f"the monitor watches no target of {app}"
    return None

