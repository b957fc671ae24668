"""The steps that follow a deploy, release or rollback: what a step gets and what it returns.

A leaf module (it imports no flow), so a step such as the smoke check
(:mod:`railguard.deploy.smoke_step`) can be written against it and handed to the flows in
:mod:`railguard.deploy.actions` explicitly: there is no registry that an import fills.

A step's result is typed, so a caller (the CLI, the gate's worker) reads what the step found
without knowing which step it was: :attr:`StepResult.status` (passed, failed, or skipped with
the reason), and :attr:`StepResult.live_commit`, the commit the step saw the app serve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from railguard.config import AppSettings, Settings
from railguard.deploy.state import DeployRecord
from railguard.errors import RailguardError
from railguard.notify.notifier import Notifier

Clock = Callable[[], datetime]


@dataclass
class PostDeployContext:
    settings: Settings
    app_name: str
    app: AppSettings
    record: DeployRecord
    clock: Clock
    #: Where the step's news goes (the job's notifier: the gate's, or one from the settings).
    notifier: Notifier


class StepStatus(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    #: The step did not look at the app (the smoke check of an app without ``url``).
    SKIPPED = "skipped"


@dataclass
class StepResult:
    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    #: Why the step did not look at the app; None when it did. A skipped step is ``ok``.
    skipped: str | None = None
    #: The commit the step saw the app serve (the smoke check reads it from ``/version`` or a
    #: ``*_build_info`` metric); None when it did not look or the app does not say.
    live_commit: str | None = None

    def __post_init__(self) -> None:
        if self.skipped is not None and not self.ok:
            raise ValueError(f"post-deploy step {self.name}: a skipped step cannot have failed")

    @classmethod
    def skip(cls, name: str, reason: str) -> StepResult:
        """A step that did not look at the app, and why (its summary is ``skipped: <reason>``)."""
        return cls(name, True, f"skipped: {reason}", skipped=reason)

    @property
    def status(self) -> StepStatus:
        if self.skipped is not None:
            return StepStatus.SKIPPED
        return StepStatus.PASSED if self.ok else StepStatus.FAILED


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
