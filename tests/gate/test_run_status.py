"""How the gate's worker reads the pipeline's report: what went wrong after the deploy, from the
steps' typed status and live commit, never from a step's name or the words of its summary."""

from __future__ import annotations

import pytest
from deploy.test_post_deploy_verdict import FAILED, LOOKED, PASSED, SKIPPED, TESTED, report

from railguard.deploy.steps import StepResult
from railguard.gate.worker import post_deploy_problem

LATER = "b" * 40


def test_nothing_is_wrong_after_a_deploy_whose_steps_passed_or_were_skipped() -> None:
    assert post_deploy_problem(report(PASSED), TESTED, legacy=False) is None
    assert post_deploy_problem(report(SKIPPED, LOOKED), TESTED, legacy=True) is None


def test_a_failed_step_is_named_with_its_summary() -> None:
    assert post_deploy_problem(report(PASSED, FAILED), TESTED, legacy=False) == (
        "smoke: smoke FAILED for tasks after 3 attempt(s): health: HTTP 503")


@pytest.mark.parametrize("name", ["smoke", "version-check"])
def test_in_legacy_mode_another_live_commit_is_the_race_whoever_saw_it(name: str) -> None:
    met_later = StepResult(name, False, f"/version reports {LATER}", live_commit=LATER)
    assert post_deploy_problem(report(met_later), TESTED, legacy=True) == (
        f"live commit {LATER[:12]} is not the tested {TESTED[:12]}: CapRover's build webhook built a later "
        "branch head (the legacy mode's race)")
    # In upload mode the same check is a plain failed check, and the tested commit met is no race.
    assert post_deploy_problem(report(met_later), TESTED, legacy=False) == f"{name}: /version reports {LATER}"
    met_tested = StepResult(name, False, "migrations_ok 0", live_commit=TESTED[:12])
    assert post_deploy_problem(report(met_tested), TESTED, legacy=True) == f"{name}: migrations_ok 0"
