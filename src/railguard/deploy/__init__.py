"""Deploy guardrails: deploy an exact commit to CapRover, roll back, release by tag (option A)
and the server-side pre-receive hook (option B). See docs/deploy.md and docs/hook.md.

The names below are imported on first use (PEP 562): the pre-receive hook runs on every push
and imports only :mod:`railguard.deploy.hook.main` and what it needs, not the HTTP client and
the flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from railguard import lazy

_EXPORTS = {
    "DEFAULT_POST_DEPLOY_STEPS": "actions", "DeployJob": "actions", "DeployReport": "actions",
    "build_deployer": "actions", "deploy_branch_head": "actions", "deploy_commit": "actions",
    "deploy_lock": "actions", "locked_flow": "actions", "rollback": "actions",
    "DeployBlocked": "steps", "DeploySteps": "steps", "PostDeployContext": "steps", "PostDeployStep": "steps",
    "PreDeployContext": "steps", "PreDeployStep": "steps", "StepResult": "steps", "StepStatus": "steps",
    "CapRoverClient": "caprover", "CapRoverDeployer": "caprover",
    "Deployer": "deployer", "DeployOutcome": "deployer",
    "DeployRecord": "state", "DeployState": "state",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names for mypy, which would otherwise see each as Any
    # ("X as X": exported, since mypy cannot read the computed __all__)
    from railguard.deploy.actions import DEFAULT_POST_DEPLOY_STEPS as DEFAULT_POST_DEPLOY_STEPS
    from railguard.deploy.actions import DeployJob as DeployJob
    from railguard.deploy.actions import DeployReport as DeployReport
    from railguard.deploy.actions import build_deployer as build_deployer
    from railguard.deploy.actions import deploy_branch_head as deploy_branch_head
    from railguard.deploy.actions import deploy_commit as deploy_commit
    from railguard.deploy.actions import deploy_lock as deploy_lock
    from railguard.deploy.actions import locked_flow as locked_flow
    from railguard.deploy.actions import rollback as rollback
    from railguard.deploy.caprover import CapRoverClient as CapRoverClient
    from railguard.deploy.caprover import CapRoverDeployer as CapRoverDeployer
    from railguard.deploy.deployer import DeployOutcome as DeployOutcome
    from railguard.deploy.deployer import Deployer as Deployer
    from railguard.deploy.state import DeployRecord as DeployRecord
    from railguard.deploy.state import DeployState as DeployState
    from railguard.deploy.steps import DeployBlocked as DeployBlocked
    from railguard.deploy.steps import DeploySteps as DeploySteps
    from railguard.deploy.steps import PostDeployContext as PostDeployContext
    from railguard.deploy.steps import PostDeployStep as PostDeployStep
    from railguard.deploy.steps import PreDeployContext as PreDeployContext
    from railguard.deploy.steps import PreDeployStep as PreDeployStep
    from railguard.deploy.steps import StepResult as StepResult
    from railguard.deploy.steps import StepStatus as StepStatus

__getattr__ = lazy.exports(__name__, _EXPORTS)
