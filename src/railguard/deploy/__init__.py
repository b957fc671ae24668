"""Deploy guardrails: deploy an exact commit to CapRover, roll back, release by tag (option A)
and the server-side pre-receive hook (option B). See docs/deploy.md and docs/hook.md.

The names below are imported on first use (PEP 562): the pre-receive hook runs on every push
and imports only :mod:`railguard.deploy.hook.main` and what it needs, not the HTTP client and
the flows.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_POST_DEPLOY_STEPS": "actions", "DeployJob": "actions", "DeployReport": "actions",
    "build_deployer": "actions", "deploy_branch_head": "actions", "deploy_commit": "actions",
    "deploy_lock": "actions", "locked_flow": "actions", "rollback": "actions",
    "PostDeployContext": "steps", "PostDeployStep": "steps", "StepResult": "steps", "StepStatus": "steps",
    "CapRoverClient": "caprover", "CapRoverDeployer": "caprover",
    "Deployer": "deployer", "DeployOutcome": "deployer",
    "DeployRecord": "state", "DeployState": "state",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
