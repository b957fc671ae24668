"""The steps before and after a deploy, release or rollback: what a step gets and what it returns.

A leaf module (it imports no flow), so a step such as the smoke check
(:mod:`railguard.deploy.smoke_step`) can be written against it and handed to the flows in
:mod:`railguard.deploy.actions` explicitly: there is no registry that an import fills.

A *pre-deploy* step runs under the deploy lock once the history row is started and before the
platform is asked for anything; the first one that fails blocks the deploy (the pre-deploy
snapshot and the rehearsal of :mod:`railguard.rehearsal`, which join the data side to the deploy
side and so live above both). A *post-deploy* step runs after the platform built the deploy
(the smoke check); every one runs, whatever the others found. The steps of one deploy share
:attr:`PreDeployContext.facts`, the one dictionary both contexts carry: what an earlier step
found (the snapshot it took) for a later one (the rehearsal that boots a copy of it).

A step's result is typed, so a caller (the CLI, the gate's worker) reads what the step found
without knowing which step it was: :attr:`StepResult.status` (passed, failed, or skipped with
the reason), and :attr:`StepResult.live_commit`, the commit the step saw the app serve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.config import AppSettings, Settings
from railguard.deploy.isolation import NO_ISOLATION, Isolation
from railguard.deploy.state import DeployRecord, Kind
from railguard.errors import CheckFailed, RailguardError
from railguard.notify.notifier import Notifier

Clock = Callable[[], datetime]


@dataclass
class PreDeployContext:
    settings: Settings
    app_name: str
    app: AppSettings
    kind: Kind
    #: The history row of this deploy (``pending`` while the steps run).
    deploy_id: int
    #: The commit that goes live; None when railguard knows none (a rollback to an image whose
    #: commit was never recorded).
    commit: str | None
    #: The commit live before it, as far as railguard knows (the deploy history, or CapRover's).
    replaces: str | None
    #: The exact tree the platform gets (``git archive`` of :attr:`commit`); None when the
    #: platform builds no tree of ours (a rollback to a built image, the legacy branch build).
    tar: bytes | None
    clock: Clock
    notifier: Notifier
    #: Nobody watches the job's terminal (the gate).
    unattended: bool = False
    #: How a step that runs the commit's code keeps it from railguard's secrets (the gate's
    #: resolved isolation: pushed code is untrusted; the CLI's own deploys: none).
    isolation: Isolation = NO_ISOLATION
    #: Shared by every step of this deploy, pre and post (the module's docstring).
    facts: dict[str, Any] = field(default_factory=dict)
    #: The repository this deploy's commits were read from (the job's: the gate's mirror of the
    #: pushed repository, the CLI's checkout); None: ``[deploy] repository``.
    repository: Path | None = None


@dataclass
class PostDeployContext:
    settings: Settings
    app_name: str
    app: AppSettings
    record: DeployRecord
    clock: Clock
    #: Where the step's news goes (the job's notifier: the gate's, or one from the settings).
    notifier: Notifier
    #: What the pre-deploy steps of this deploy found (:attr:`PreDeployContext.facts`).
    facts: dict[str, Any] = field(default_factory=dict)


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
            raise ValueError(f"deploy step {self.name}: a skipped step cannot have failed")

    @classmethod
    def skip(cls, name: str, reason: str) -> StepResult:
        """A step that did not look at the app, and why (its summary is ``skipped: <reason>``)."""
        return cls(name, True, f"skipped: {reason}", skipped=reason)

    @property
    def status(self) -> StepStatus:
        if self.skipped is not None:
            return StepStatus.SKIPPED
        return StepStatus.PASSED if self.ok else StepStatus.FAILED


@dataclass(frozen=True)
class PreDeployStep:
    """A step before the deploy, with the name it is made with: the name a result of it carries
    when it raises (the report, the CLI's and the gate's lines, ``blocked by the NAME step``),
    so that none of them shows the name of the function behind it. Called like the function."""

    name: str
    run: Callable[[PreDeployContext], StepResult]

    def __call__(self, context: PreDeployContext) -> StepResult:
        return self.run(context)


def pre_deploy_step(name: str) -> Callable[[Callable[[PreDeployContext], StepResult]], PreDeployStep]:
    """Make the function below a :class:`PreDeployStep` called ``name`` (the name its results carry)."""
    return lambda run: PreDeployStep(name, run)


PostDeployStep = Callable[[PostDeployContext], StepResult]


class DeployBlocked(CheckFailed):
    """A pre-deploy step failed: the platform was not asked, the history row says ``blocked``."""

    def __init__(self, message: str, *, steps: Sequence[StepResult], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: Every pre-deploy step that ran, the failed one last.
        self.steps = list(steps)

    @property
    def failed_step(self) -> StepResult:
        return self.steps[-1]


@dataclass(frozen=True)
class DeploySteps:
    """The steps a deploy job runs: what :func:`railguard.rehearsal.steps.deploy_steps` hands to
    the CLI's flows and to the gate."""

    pre: tuple[PreDeployStep, ...] = ()
    post: tuple[PostDeployStep, ...] = ()


def _step_name(step: Callable[..., StepResult]) -> str:
    """A :class:`PreDeployStep` by the name it was made with; a plain function (a post-deploy
    step, or a Python caller's own pre-deploy function) by its own name."""
    if isinstance(step, PreDeployStep):
        return step.name
    return getattr(step, "__name__", None) or "step"


def run_pre_deploy(steps: Sequence[PreDeployStep], context: PreDeployContext) -> list[StepResult]:
    """Run ``steps`` in order until one fails (a step that raises a railguard error has failed):
    the later ones would act on a deploy that is not going to happen."""
    results = []
    for step in steps:
        try:
            result = step(context)
        except RailguardError as exc:
            result = StepResult(name=_step_name(step), ok=False, summary=exc.message)
        results.append(result)
        if result.status is StepStatus.FAILED:
            break
    return results


def run_post_deploy(steps: Sequence[PostDeployStep], context: PostDeployContext) -> list[StepResult]:
    """Run ``steps`` in order; a step that raises counts as failed, later steps still run."""
    results = []
    for step in steps:
        try:
            results.append(step(context))
        except RailguardError as exc:
            results.append(StepResult(name=_step_name(step), ok=False, summary=exc.message))
    return results
