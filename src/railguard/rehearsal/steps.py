"""The steps around every deploy, release and rollback that the CLI and the gate run.

:func:`deploy_steps` is the one list: ``railguard deploy``, ``release`` and ``rollback`` build
their job with it (cli/deploy_cmd.py), and ``railguard gate serve`` hands it to the gate's
workers (the gate may not import this package: the layers in pyproject.toml). A Python caller
of :func:`railguard.deploy.actions.deploy_commit` that names no steps gets the smoke check alone.

The order, and why:

- before: the snapshot of the live database (a deploy that cannot be undone is not started),
  then the rehearsal of the candidate commit on a copy of that snapshot, then the monitor's
  deploy window (opened last, so a long rehearsal does not mute the monitor);
- after: the smoke check, then whether the deploy changed the schema since the snapshot (what a
  rollback of the image alone would leave behind), then the deploy window closed.
"""

from __future__ import annotations

from railguard.config import AppSettings, Settings
from railguard.deploy import actions
from railguard.deploy.steps import DeploySteps, PostDeployStep, PreDeployStep
from railguard.rehearsal.data_rollback import schema_since_snapshot
from railguard.rehearsal.snapshot import snapshot
from railguard.rehearsal import monitor_steps
from railguard.rehearsal.step import rehearsal_step


def deploy_steps(settings: Settings, app_name: str, app: AppSettings) -> DeploySteps:
    """The steps before and after a deploy of ``app_name`` (the module's docstring gives the order)."""
    pre: list[PreDeployStep] = []
    pre.append(snapshot)  # the pre-deploy snapshot (railguard.rehearsal.snapshot)
    if app.rehearsal.is_enabled(app.drill):  # an app with no drill has nothing to rehearse with: no line at all
        pre.append(rehearsal_step)  # the candidate booted on a copy of the snapshot (docs/deploy.md, "Rehearsed deploys")
    pre.append(monitor_steps.open_window_step)  # last: a long or failed rehearsal never mutes the monitor
    # Read at each call, as DeployJob's own default is: the smoke check unless the defaults changed.
    post: list[PostDeployStep] = list(actions.DEFAULT_POST_DEPLOY_STEPS)
    post.append(schema_since_snapshot)  # did the deploy change the schema since the snapshot (data_rollback)
    post.append(monitor_steps.close_window_step)  # last: the window covers the new process's start and checks
    return DeploySteps(pre=tuple(pre), post=tuple(post))
