"""The smoke check as the post-deploy step of ``railguard deploy``, ``release`` and ``rollback``.

The default post-deploy step of every deploy job
(:data:`railguard.deploy.actions.DEFAULT_POST_DEPLOY_STEPS`), named there explicitly: a Python
caller of ``deploy_commit`` gets it without importing anything else. The deploy's own record gives
the two facts the check needs: when the deploy started (the serving process must have started
after it) and which commit must be serving.
"""

from __future__ import annotations

import logging
from datetime import datetime

from railguard.deploy.steps import PostDeployContext, StepResult
from railguard.notify.notifier import Notifier
from railguard.smoke.record import keep_smoke_result
from railguard.smoke.runner import SmokeReport, notify_result, run_smoke

log = logging.getLogger("railguard.smoke")


def smoke(context: PostDeployContext) -> StepResult:
    name, app, record = context.app_name, context.app, context.record
    if not app.url:
        return StepResult.skip("smoke", f"set url under [apps.{name}] to check that the new process serves")
    report = run_smoke(name, app.url, app.smoke, deploy_started_at=record.started_at,
                       expected_commit=record.git_hash)
    now = context.clock()
    try:
        notifier = context.notifier
        if record.kind == "rollback":
            _notify_rollback(notifier, report, record.id, now)
        elif app.smoke.notify_ok or not report.ok:
            notify_result(notifier, report, now=now)
    except Exception as exc:  # a notification problem never fails the deploy
        log.warning("the %s notification could not be sent: %s", record.kind, exc)
    keep_smoke_result(context.settings.state_dir, name, ok=report.ok, summary=report.summary, commit=report.commit,
                      now=now)
    return StepResult("smoke", report.ok, report.summary, details=report.as_dict(), live_commit=report.commit)


def _notify_rollback(notifier: Notifier, report: SmokeReport, deploy_id: int, now: datetime) -> None:
    commit = (report.commit or report.expected_commit or "?")[:12]
    verdict = "smoke OK" if report.ok else report.summary
    report.notification = notifier.notify("rollback", f"{report.app} rolled back to {commit}",
                                          f"{report.app} rolled back to {commit}: {verdict}",
                                          key=f"rollback:{report.app}:{deploy_id}", now=now)

