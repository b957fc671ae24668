"""The typed result of the post-deploy steps: each step's status (passed, failed, or skipped
with the reason) and the commit it saw live, and the report's verdict over them, which callers
read instead of a step's name or the words of its summary. Pure, on fixed records."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from railguard.deploy.actions import DeployReport
from railguard.deploy.deployer import DeployOutcome
from railguard.deploy.state import DeployRecord
from railguard.deploy.steps import StepResult, StepStatus
from railguard.errors import ExitCode

TESTED = "a" * 40
T = datetime(2026, 11, 27, tzinfo=timezone.utc)

PASSED = StepResult("smoke", True, "smoke OK: tasks serves " + TESTED, live_commit=TESTED)
SKIPPED = StepResult.skip("smoke", "set url under [apps.tasks] to check that the new process serves")
FAILED = StepResult("smoke", False, "smoke FAILED for tasks after 3 attempt(s): health: HTTP 503")
#: A step of the caller's own whose summary happens to begin like a skipped one's: it ran, and passed.
LOOKED = StepResult("warm-cache", True, "skipped nothing: 12 pages warmed")


def report(*steps: StepResult) -> DeployReport:
    record = DeployRecord(id=1, app="tasks", caprover_app="tasks", kind="deploy", ref=TESTED, git_hash=TESTED,
                          tag=None, image=None, version=None, started_at=T, finished_at=T, result="accepted",
                          detail=None, rolled_back_from=None)
    return DeployReport(record=record, outcome=DeployOutcome(result="accepted"), steps=list(steps))


def test_a_skipped_step_says_why_is_ok_and_cannot_have_failed() -> None:
    assert (SKIPPED.status, SKIPPED.ok, SKIPPED.skipped) == (
        StepStatus.SKIPPED, True, "set url under [apps.tasks] to check that the new process serves")
    assert SKIPPED.summary == "skipped: set url under [apps.tasks] to check that the new process serves"
    with pytest.raises(ValueError, match="a skipped step cannot have failed"):
        StepResult("smoke", False, "skipped: no url", skipped="no url")


@pytest.mark.parametrize(("steps", "checked", "exit_code"), [
    ((), StepStatus.SKIPPED, ExitCode.OK),
    ((SKIPPED,), StepStatus.SKIPPED, ExitCode.OK),
    ((PASSED,), StepStatus.PASSED, ExitCode.OK),
    ((LOOKED,), StepStatus.PASSED, ExitCode.OK),
    ((SKIPPED, LOOKED), StepStatus.PASSED, ExitCode.OK),
    ((PASSED, FAILED), StepStatus.FAILED, ExitCode.CHECK_FAILED),
    ((FAILED, SKIPPED), StepStatus.FAILED, ExitCode.CHECK_FAILED),
])
def test_the_report_is_failed_when_a_step_failed_skipped_when_none_looked_else_passed(
        steps: tuple[StepResult, ...], checked: StepStatus, exit_code: ExitCode) -> None:
    verdict = report(*steps)
    assert (verdict.checked, verdict.exit_code) == (checked, exit_code)
    # The invariant on every row: failed exactly when a failed step is named.
    assert (verdict.failed_step is not None) == (checked is StepStatus.FAILED)


def test_the_live_commit_is_the_one_a_step_saw() -> None:
    assert report(SKIPPED, PASSED).live_commit == TESTED
    assert report(SKIPPED).live_commit is None
