"""Deploy an exact commit, roll back, and the steps that follow every deploy.

The flows only see a :class:`~railguard.deploy.deployer.Deployer` and the
:class:`~railguard.deploy.state.DeployState` history; :func:`build_deployer` makes the
CapRover one from the settings.

The order of work in every flow, and why:

1. Take the app's deploy lock (:func:`deploy_lock`) before anything else: a second deploy,
   release or rollback of the same app (the gate's worker, a hand ``railguard rollback``, a
   cron'd release) is refused with exit 5 before it has written a history row, so two flows
   never interleave their records or their CapRover calls. The lock is the library's, not the
   CLI's: whoever calls :func:`deploy_commit`, :func:`rollback` or ``run_release`` holds it.
2. Write the history row (``pending``).
3. Run the job's pre-deploy steps (:attr:`DeployJob.pre_deploy`: the snapshot and the rehearsal
   that :func:`railguard.rehearsal.steps.deploy_steps` hands the CLI and the gate; none for a
   Python caller that names none). The first that fails blocks the deploy: the row is completed
   as ``blocked`` and :class:`~railguard.deploy.steps.DeployBlocked` (exit 7) is raised, before
   the platform is asked for anything.
4. Call the deployer, complete the row.
5. Run the job's post-deploy steps (:attr:`DeployJob.post_deploy`; the smoke check unless the
   caller hands others), still under the lock: a rollback must not start while the smoke check
   of the deploy it would undo is still looking at the app.

Who hears a failure: the library, once, so no caller sends it again. A deploy the platform
refused, failed or superseded is told to the owner ("<app> <kind> FAILED", event
``deploy_failed``) for every caller, since the deploy was recorded and did not go live. A
failure before the platform was asked (the lock is busy, the ref does not resolve, no rollback
target) is only raised: a person at a terminal reads it there. An unattended job (the gate's,
:attr:`DeployJob.unattended`) has nobody at a terminal, so every failure of its flow is told.
Each failure is told from one place: :func:`_ship` tells the platform's failures of an attended
job, :func:`locked_flow` every failure of an unattended one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from railguard.config import AppSettings, DeploySettings, Settings
from railguard.deploy.caprover import CapRoverClient, CapRoverDeployer, DeploySuperseded, RetryPolicy
from railguard.deploy.deployer import AppVersions, Deployer, DeployOutcome
from railguard.deploy.git import Git
from railguard.deploy.isolation import NO_ISOLATION, Isolation
from railguard.deploy.state import DeployRecord, DeployState, Kind
from railguard.deploy.steps import (DeployBlocked, PostDeployContext, PostDeployStep, PreDeployContext, PreDeployStep,
                                    StepResult, StepStatus, run_post_deploy, run_pre_deploy)
from railguard.errors import ConfigError, ExitCode, NotFound, RailguardError, UsageError
from railguard.locking import exclusive_lock
from railguard.notify.notifier import Notifier, notifier_for
from railguard.secrets import read_secret
from railguard.deploy.smoke_step import smoke

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)
#: The two-factor code for a login (the variable the official CapRover CLI reads).
OTP_ENV = "CAPROVER_OTP_TOKEN"


class NothingToRollBackTo(NotFound):
    pass


def build_deployer(app_name: str, deploy: DeploySettings, *, env: Mapping[str, str] = os.environ,
                   sleep: Callable[[float], None] = time.sleep) -> CapRoverDeployer:
    """The CapRover deployer for one app, with its secrets read from the environment."""
    if not deploy.caprover_url:
        raise ConfigError(f"apps.{app_name}.deploy.caprover_url is not set",
                          hint=f'Add caprover_url = "https://captain.example.com" under [apps.{app_name}.deploy]')
    token = read_secret(deploy.token_env, env) if deploy.mode == "app-token" else None
    password = read_secret(deploy.password_env, env) if deploy.mode == "login" else None
    # Two-factor login: the official CLI reads the code from the same variable.
    otp = read_secret(OTP_ENV, env) if deploy.mode == "login" else None
    client = CapRoverClient(
        deploy.caprover_url, app_token=token, password=password, otp_token=otp,
        timeout=deploy.request_timeout.total_seconds(),
        retry=RetryPolicy(attempts=deploy.busy_retries), sleep=sleep,
        secret_names={"app-token": deploy.token_env, "password": deploy.password_env,
                      "webhook": deploy.webhook_token_env})
    return CapRoverDeployer(client, app=deploy.caprover_app or app_name, mode=deploy.mode,
                            build_timeout=deploy.build_timeout.total_seconds(),
                            poll_interval=deploy.poll_interval.total_seconds())


# --- the steps after a deploy -----------------------------------------------------------------

#: The checks that run after every successful deploy, release and rollback, in order, unless
#: the caller's :class:`DeployJob` names others: the post-deploy smoke check (docs/monitoring.md).
DEFAULT_POST_DEPLOY_STEPS: tuple[PostDeployStep, ...] = (smoke,)


# --- deploy -------------------------------------------------------------------------------------

@dataclass
class DeployReport:
    record: DeployRecord
    outcome: DeployOutcome
    steps: list[StepResult] = field(default_factory=list)
    #: What the pre-deploy steps found (each passed or skipped: a failed one blocks the deploy).
    pre_steps: list[StepResult] = field(default_factory=list)
    #: What the steps of the deploy handed each other (:attr:`PreDeployContext.facts`).
    facts: dict[str, Any] = field(default_factory=dict)
    #: The commit the deploy replaced as far as railguard knows (for a rollback: where it came from).
    replaced: str | None = None
    #: For a rollback: what it went back to, in words ("version 7 (img-captain-tasks:7)").
    target: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.CHECK_FAILED if self.checked is StepStatus.FAILED else ExitCode.OK

    @property
    def checked(self) -> StepStatus:
        """The post-deploy steps as one verdict: failed when one failed, skipped when none of them
        looked at the app (no steps, or each skipped), passed otherwise."""
        if self.failed_step is not None:
            return StepStatus.FAILED
        if all(step.status is StepStatus.SKIPPED for step in self.steps):
            return StepStatus.SKIPPED
        return StepStatus.PASSED

    @property
    def failed_step(self) -> StepResult | None:
        return next((step for step in self.steps if step.status is StepStatus.FAILED), None)

    @property
    def live_commit(self) -> str | None:
        """The commit a post-deploy step saw the app serve (the smoke check), None when none saw one."""
        return next((step.live_commit for step in self.steps if step.live_commit), None)


@dataclass
class DeployJob:
    """Everything a deploy needs, gathered once by the caller."""

    settings: Settings
    app_name: str
    app: AppSettings
    deployer: Deployer
    state: DeployState
    git: Git
    clock: Clock
    #: Run in order before the platform is asked; the first that fails blocks the deploy.
    pre_deploy: tuple[PreDeployStep, ...] = ()
    #: Run in order after the deploy succeeded; read when the job is made, so a Python caller
    #: that names none gets the smoke check exactly as the CLI and the gate do.
    post_deploy: tuple[PostDeployStep, ...] = field(default_factory=lambda: DEFAULT_POST_DEPLOY_STEPS)
    #: Where the flow's news goes; None: one made from the settings and this process's environment.
    notifier: Notifier | None = None
    #: Nobody watches this job's terminal (the gate): every failure of its flow is told to the
    #: owner, not only the platform's (see the module's docstring).
    unattended: bool = False
    #: How the pre-deploy steps run the commit's code (:attr:`PreDeployContext.isolation`): the
    #: gate hands its resolved isolation; a person deploying their own checkout needs none.
    isolation: Isolation = NO_ISOLATION

    def owner(self) -> Notifier:
        """The notifier of the job's news."""
        return self.notifier if self.notifier is not None else notifier_for(self.settings)


@contextlib.contextmanager
def deploy_lock(job: DeployJob) -> Iterator[None]:
    """One deploy, rollback or release of an app at a time from this machine (exit 5 otherwise).

    The lock file sits beside the deploy history it protects; ``flock`` (railguard.locking)
    is dropped by the kernel when the holder dies, so a crashed run leaves no stale lock."""
    directory = job.state.path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory} for the deploy history: {exc.strerror}",
                          hint="Set state_dir to a directory railguard may write") from exc
    with exclusive_lock(directory / f"deploy-{job.app_name}.lock", f"a deploy of {job.app_name}"):
        yield


@contextlib.contextmanager
def locked_flow(job: DeployJob, kind: Kind, what: str) -> Iterator[None]:
    """A deploy, rollback or release of ``what`` under :func:`deploy_lock`; for an unattended job
    every failure of it, the busy lock included, is told to the owner once (the module's docstring)."""
    try:
        with deploy_lock(job):
            yield
    except RailguardError as exc:
        if job.unattended:
            _tell_deploy_failed(job, kind, what, exc.message)
        raise


def deploy_commit(job: DeployJob, ref: str, *, kind: Kind = "deploy", tag: str | None = None) -> DeployReport:
    """Deploy exactly the commit ``ref`` names: ``git archive`` of it, with its SHA as ``gitHash``."""
    with locked_flow(job, kind, ref):
        return deploy_commit_holding_lock(job, ref, kind=kind, tag=tag)


def deploy_commit_holding_lock(job: DeployJob, ref: str, *, kind: Kind = "deploy",
                               tag: str | None = None) -> DeployReport:
    """:func:`deploy_commit` for a caller that holds :func:`deploy_lock` already (a release,
    which keeps the lock from its tests to its deploy)."""
    job.git.ensure_repository()
    sha = job.git.resolve_commit(ref)
    tar = job.git.archive(sha)
    return _ship(job, kind=kind, ref=ref, git_hash=sha, tag=tag, image=None, tar=tar)


def deploy_branch_head(job: DeployJob, branch: str, commit: str, *,
                       env: Mapping[str, str] = os.environ) -> DeployReport:
    """The legacy flow (the gate's ``legacy-webhook`` mode): ask the platform to build ``branch``
    from its own clone, recorded as ``commit``, the head that was tested. The platform builds
    whatever the head is when the build starts; the smoke check (a post-deploy step, since
    ``commit`` is the record's) reports the commit it met (:attr:`DeployReport.live_commit`).

    The build webhook's token is read from ``env`` (``deploy.webhook_token_env``) inside the
    flow, so a missing one is a failure of the flow like any other."""
    with locked_flow(job, "deploy", commit):
        token = read_secret(job.app.deploy.webhook_token_env, env, required=True)
        assert token is not None  # required=True raises instead
        return _ship(job, kind="deploy", ref=f"refs/heads/{branch}", git_hash=commit, tag=None, image=None,
                     send=lambda: job.deployer.trigger_branch_build(branch, commit, token))


def _ship(job: DeployJob, *, kind: Kind, ref: str | None, git_hash: str | None, tag: str | None,
          image: str | None, tar: bytes | None = None, send: Callable[[], DeployOutcome] | None = None,
          replaced: str | None = None, target: str | None = None) -> DeployReport:
    if kind != "rollback":  # a rollback knows what it replaces from its target
        replaced = _live_commit(job)
    deploy_id = job.state.start(app=job.app_name, caprover_app=job.deployer.app, kind=kind, ref=ref,
                                git_hash=git_hash, tag=tag, image=image, now=job.clock(),
                                rolled_back_from=replaced if kind == "rollback" else None)
    facts: dict[str, Any] = {}
    pre_steps = _before(job, PreDeployContext(
        settings=job.settings, app_name=job.app_name, app=job.app, kind=kind, deploy_id=deploy_id, commit=git_hash,
        replaces=replaced, tar=tar, clock=job.clock, notifier=job.owner(), unattended=job.unattended,
        isolation=job.isolation, facts=facts, repository=job.git.path))
    try:
        if send is not None:
            outcome = send()
        elif tar is not None:
            assert git_hash is not None
            outcome = job.deployer.deploy_source(tar, git_hash)
        else:
            assert image is not None
            outcome = job.deployer.deploy_image(image, git_hash)
    except DeploySuperseded as exc:
        # Not railguard's deploy any more: recorded as such, never as ok (and never rolled back).
        job.state.finish(deploy_id, result="superseded", now=job.clock(), version=exc.version, detail=exc.message)
        if not job.unattended:  # an unattended job's failures are told by locked_flow, once
            _tell_deploy_failed(job, kind, git_hash or image, exc.message)
        raise
    except RailguardError as exc:
        job.state.finish(deploy_id, result="failed", now=job.clock(), detail=exc.message)
        if not job.unattended:
            _tell_deploy_failed(job, kind, git_hash or image, exc.message)
        raise
    except BaseException:
        job.state.finish(deploy_id, result="failed", now=job.clock(), detail="interrupted")
        raise
    # A rollback keeps the image it went back to: CapRover's new version is only `FROM` that image.
    record = job.state.finish(deploy_id, result=outcome.result, now=job.clock(), version=outcome.version,
                              image=outcome.image if image is None else None)
    steps = run_post_deploy(job.post_deploy, PostDeployContext(settings=job.settings, app_name=job.app_name,
                                                               app=job.app, record=record, clock=job.clock,
                                                               notifier=job.owner(), facts=facts))
    return DeployReport(record=record, outcome=outcome, steps=steps, pre_steps=pre_steps, facts=facts,
                        replaced=replaced, target=target)


def _live_commit(job: DeployJob) -> str | None:
    """The commit railguard last put live for the app (its newest live deploy), if any."""
    return next((record.git_hash for record in job.state.history(job.app_name) if record.is_live_candidate), None)


def _before(job: DeployJob, context: PreDeployContext) -> list[StepResult]:
    """The pre-deploy steps, with the history row completed as ``blocked`` when one fails (or
    ``failed`` when one is cut short: the deploy did not happen either way)."""
    try:
        results = run_pre_deploy(job.pre_deploy, context)
    except BaseException:
        job.state.finish(context.deploy_id, result="failed", now=job.clock(), detail="interrupted before the deploy")
        raise
    failed = next((result for result in results if result.status is StepStatus.FAILED), None)
    if failed is None:
        return results
    message = f"{context.kind} of {(context.commit or 'the image')[:12]} blocked by the {failed.name} step: {failed.summary}"
    job.state.finish(context.deploy_id, result="blocked", now=job.clock(), detail=message)
    raise DeployBlocked(message, steps=results,
                        hint="Nothing was deployed; fix what the step found, or see docs/deploy.md")


def _tell_deploy_failed(job: DeployJob, kind: Kind, what: str | None, reason: str) -> None:
    """The deploy did not go live: the owner hears it, as after a failed smoke check."""
    try:
        job.owner().notify(
            "deploy_failed", f"{job.app_name} {kind} FAILED",
            f"{job.app_name}: {kind} of {what or 'unknown'} to CapRover app {job.deployer.app} failed: {reason}",
            now=job.clock())
    except Exception as exc:  # the notification path must never mask the deploy's own error
        log.warning("notification of the failed %s could not be sent: %s", kind, exc)


# --- rollback -----------------------------------------------------------------------------------

_VERSION = re.compile(r"\d{1,6}")
_SHA = re.compile(r"[0-9a-fA-F]{7,40}")


@dataclass
class RollbackTarget:
    """What a rollback deploys: a built image, or (when no image is known) a commit rebuilt from git."""

    image: str | None
    git_hash: str | None
    version: int | None
    #: The commit running now, as far as railguard can tell.
    current: str | None
    reason: str


def choose_rollback_target(to: str | None, *, caprover_app: str, history: list[DeployRecord],
                           versions: AppVersions | None) -> RollbackTarget:
    """Pure: where ``railguard rollback [--to VERSION|SHA]`` goes.

    ``versions`` is CapRover's own list (login mode) and wins when present; otherwise
    railguard's history decides. Without ``--to`` the target is the newest earlier deploy of a
    different commit that was not itself rolled back from.
    """
    if to is not None and not (_VERSION.fullmatch(to) or _SHA.fullmatch(to)):
        raise UsageError(f"--to {to!r} is neither a version number nor a commit SHA",
                         hint="Give a version from `railguard deploys list` or at least 7 hex digits of a commit")
    live = [r for r in history if r.is_live_candidate]
    current_record = live[0] if live else None
    if versions is not None:
        target = _from_versions(to, caprover_app, versions)
        if target is not None:
            return target
    current = current_record.git_hash if current_record else None
    if to is None:
        return _previous_from_history(live, caprover_app)
    if _VERSION.fullmatch(to):
        number = int(to)
        known = next((r for r in live if r.version == number and r.image), None)
        if known is None or known.image is None:
            # Never guess the image's name: with a push registry it is <registry>/<prefix>/img-captain-<app>:<n>.
            raise NothingToRollBackTo(
                f"railguard has no image recorded for version {number} of {caprover_app}, and an app token "
                "cannot read CapRover's version list",
                hint='Set deploy.mode = "login" (the image name is read from CapRover), or give --to SHA to '
                     "rebuild that commit from git")
        return RollbackTarget(image=known.image, git_hash=known.git_hash, version=number,
                              current=current, reason=f"version {number} ({known.image})")
    match = next((r for r in live if r.git_hash and r.git_hash.startswith(to.lower())), None)
    if match is not None and match.image:
        return RollbackTarget(image=match.image, git_hash=match.git_hash, version=match.version, current=current,
                              reason=f"deploy #{match.id} of {match.git_hash[:12] if match.git_hash else '?'}"
                                     f" ({match.image})")
    return RollbackTarget(image=None, git_hash=match.git_hash if match else to, version=None, current=current,
                          reason=f"commit {to[:12]} rebuilt from git (no image of it is recorded)")


def _from_versions(to: str | None, caprover_app: str, versions: AppVersions) -> RollbackTarget | None:
    deployed = versions.get(versions.deployed_version) if versions.deployed_version is not None else None
    current = deployed.git_hash if deployed else None
    built = sorted((v for v in versions.versions if v.image), key=lambda v: v.version, reverse=True)
    if to is None:
        earlier = [v for v in built if deployed is None or (v.version < deployed.version and v.image != deployed.image)]
        if not earlier:
            raise NothingToRollBackTo(f"CapRover keeps no earlier built version of {caprover_app} to roll back to",
                                      hint="Give --to SHA to rebuild an older commit from git")
        chosen = earlier[0]
    elif _VERSION.fullmatch(to):
        chosen_or_none = versions.get(int(to))
        if chosen_or_none is None:
            raise NothingToRollBackTo(f"CapRover has no version {to} of {caprover_app} (it keeps the last 50)",
                                      hint="See the versions with: railguard deploys list --caprover")
        if not chosen_or_none.image:
            raise NothingToRollBackTo(f"version {to} of {caprover_app} has no image: its build failed",
                                      hint="Pick a version that built, see: railguard deploys list --caprover")
        chosen = chosen_or_none
    else:
        found = next((v for v in built if v.git_hash and v.git_hash.startswith(to.lower())), None)
        if found is None:
            return None
        chosen = found
    assert chosen.image is not None
    return RollbackTarget(image=chosen.image, git_hash=chosen.git_hash, version=chosen.version, current=current,
                          reason=f"version {chosen.version} ({chosen.image})")


def _previous_from_history(live: list[DeployRecord], caprover_app: str) -> RollbackTarget:
    if not live:
        raise NothingToRollBackTo(f"railguard has recorded no deploy of {caprover_app} yet",
                                  hint="Give --to VERSION (CapRover's version number) or --to SHA")
    current = live[0]
    left_behind = {current.git_hash} | {r.rolled_back_from for r in live if r.kind == "rollback"}
    for record in live[1:]:
        if record.git_hash not in left_behind:
            what = record.image or f"commit {record.git_hash[:12] if record.git_hash else '?'} rebuilt from git"
            return RollbackTarget(image=record.image, git_hash=record.git_hash, version=record.version,
                                  current=current.git_hash, reason=f"deploy #{record.id} ({what})")
    raise NothingToRollBackTo(f"railguard has recorded no earlier deploy of {caprover_app} to roll back to",
                              hint="Give --to VERSION (CapRover's version number) or --to SHA")


def rollback(job: DeployJob, to: str | None) -> DeployReport:
    """Deploy an earlier image (``FROM <image>``) or rebuild an earlier commit, and record it."""
    # The target is chosen under the lock: the history it is chosen from cannot change meanwhile.
    with locked_flow(job, "rollback", to or "the previous deploy"):
        return _rollback(job, to)


def _rollback(job: DeployJob, to: str | None) -> DeployReport:
    versions = job.deployer.versions() if job.deployer.observes_builds else None
    target = choose_rollback_target(to, caprover_app=job.deployer.app, history=job.state.history(job.app_name),
                                    versions=versions)
    if target.image is not None:
        return _ship(job, kind="rollback", ref=to or "previous", git_hash=target.git_hash, tag=None,
                     image=target.image, tar=None, replaced=target.current, target=target.reason)
    assert target.git_hash is not None
    job.git.ensure_repository()
    sha = job.git.resolve_commit(target.git_hash)
    return _ship(job, kind="rollback", ref=to or "previous", git_hash=sha, tag=None, image=None,
                 tar=job.git.archive(sha), replaced=target.current, target=target.reason)
