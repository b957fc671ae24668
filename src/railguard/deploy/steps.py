"""The steps that follow a deploy, release or rollback: what a step gets and what it returns.

A leaf module (it imports no flow), so a step such as the smoke check
(:mod:`railguard.deploy.smoke_step`) can be written against it and handed to the flows in
:mod:`railguard.deploy.actions` explicitly: there is no registry that an import fills.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from railguard.config import AppSettings, Settings
from railguard.deploy.state import DeployRecord
from railguard.errors import RailguardError

Clock = Callable[[], datetime]


@dataclass
class PostDeployContext:
    settings: Settings
    app_name: str
    app: AppSettings
    record: DeployRecord
    clock: Clock


@dataclass
class StepResult:
    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


PostDeployStep = Callable[[PostDeployContext], StepResult]


def run_post_deploy(steps: Sequence[PostDeployStep], context: PostDeployContext) -> list[StepResult]:
    """Run ``steps`` in order; a step that raises counts as failed, later steps still run."""
    results = []
    for step in steps:
        name = getattr(step, "__name__", "step")
        try:
            results.append(step(context))
        except RailguardError as exc:
            results.append(StepResult(name=name, ok=False, summary=exc.message))
    return results
