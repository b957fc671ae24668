"""One worker per app: test the newest pushed commit, then deploy exactly that commit.

The steps of a run (docs/gate.md):

1. Fetch the commit into the app's cached bare mirror, from the **configured** clone URL (a
   payload's URL was only compared with it), peeling an annotated tag to its commit; then
   Forgejo status ``pending`` on that commit.
2. ``git archive`` of the commit, tested by :func:`railguard.deploy.pipeline.test_tree` (the
   hook's and the gate check's way too): a fresh directory, a timeout, a clean environment that
   holds none of the gate's secrets, isolated (:mod:`railguard.deploy.isolation`: pushed code
   must not be able to read the gate's process, secret files or state); every line goes to
   the run's log.
3. Status ``failure`` and no deploy, or status ``success`` and a deploy of that very commit
   through the library's locked pipeline (:func:`~railguard.deploy.actions.deploy_commit`: an
   upload of the tested tar with its SHA as ``gitHash``; or, in legacy mode,
   :func:`~railguard.deploy.actions.deploy_branch_head`: CapRover's build webhook, which builds
   whatever the branch head is when it builds). The pipeline holds the app's deploy lock, so a
   hand ``railguard rollback`` cannot interleave with it.
4. The pipeline's post-deploy smoke check (which also proves the live commit is the tested
   one); the worker only maps the report to a run status through its typed verdict
   (:attr:`~railguard.deploy.actions.DeployReport.checked`, ``live_commit``). On failure the
   previous good deploy goes back when ``rollback_on_smoke_failure`` is on. That rollback never
   touches the data: when the deploy changed the schema since its pre-deploy snapshot (a fact
   the post-deploy steps leave), the run's log and one notification say a data rollback may be
   needed and give its command.
5. One notification per event, each from one owner: "tests failed" from the worker (the
   pipeline never sees those runs); every failure of the deploy or the rollback from the
   pipeline (the job is ``unattended``); "deploy OK <commit>" once per commit, "deploy FAILED"
   and "rolled back to" from the smoke check; "deploy OK" from the worker only when no smoke
   check looked at the app.

Never deploy backwards: a commit that is live already, or an ancestor of the live commit (as the
deploy history says), is skipped: a replayed old delivery, a late catch-up.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.config import AppSettings, Settings
from railguard.deploy.actions import (DEFAULT_POST_DEPLOY_STEPS, DeployJob, DeployReport, deploy_branch_head,
                                      deploy_commit, rollback)
from railguard.deploy.deployer import Deployer
from railguard.deploy.git import Git, GitError, git_environment_without_git_vars
from railguard.deploy.isolation import NO_ISOLATION, Isolation
from railguard.deploy.pipeline import TreeUnusable, test_tree
from railguard.deploy.state import DeployState, state_path
from railguard.deploy.steps import DeployBlocked, DeploySteps, StepResult, StepStatus
from railguard.deploy.suite import SuiteCommandMissing
from railguard.durable import make_private_directory, open_private_append
from railguard.errors import RailguardError
from railguard.gate.forgejo import ForgejoStatuses, State
from railguard.gate.queue import Run, RunQueue, Status, run_url
from railguard.gate.target import GateTarget
from railguard.notify import Notifier
from railguard.secrets import Secret, read_secret, redact
from railguard.smoke.checks import same_commit

log = logging.getLogger("railguard.gate")
#: Finished runs kept per app (rows and log files); older ones go as new ones finish.
RUNS_KEPT_PER_APP = 500
Clock = Callable[[], datetime]
#: The post-deploy fact a deploy that changed the schema leaves (railguard.rehearsal.data_rollback's
#: ADVICE_FACT, named here because the gate may not import that package): plain names and text,
#: ``snapshot``, ``changes``, ``rollback_command``, ``restore_command``.
DATA_ROLLBACK_FACT = "data_rollback"
#: How a deploy step's status reads in a run's log.
_IN_THE_LOG = {StepStatus.PASSED: "ok", StepStatus.FAILED: "FAILED", StepStatus.SKIPPED: "skipped"}
#: A run starts once no delivery arrived for SETTLE_QUIET seconds, or SETTLE_LIMIT after the first.
SETTLE_QUIET = 0.1
SETTLE_LIMIT = 1.0


class MirrorFailed(RailguardError):
    """The commit could not be fetched from the repository."""


class RunLog:
    """The run's log file, every line scrubbed of the gate's secrets before it is written."""

    def __init__(self, path: Path, secrets: list[Secret | str | None]) -> None:
        self.path = path
        self._secrets = secrets
        self._lock = threading.Lock()
        make_private_directory(path.parent)  # logs may quote what a test printed: 0700, files 0600

    def line(self, text: str) -> None:
        with self._lock, open_private_append(self.path) as handle:
            handle.write(redact(text, self._secrets).rstrip("\n") + "\n")


def read_log(path: Path, limit: int = 512 * 1024) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    return text if size <= limit else "[... earlier lines cut ...]\n" + text.split("\n", 1)[-1]


# --- git: the cached mirror ---------------------------------------------------------------------

def git_environment(env: Mapping[str, str], token: Secret | None) -> dict[str, str]:
    """What git runs with: no inherited GIT_* variables, no prompts, and the clone token (if any)
    passed as git configuration through the environment, so it never appears in an argv."""
    result = git_environment_without_git_vars(env)
    result["GIT_TERMINAL_PROMPT"] = "0"
    if token is not None:
        basic = base64.b64encode(f"railguard:{token.reveal()}".encode()).decode()
        result.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                       "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"})
    return result


@dataclass
class Mirror:
    """A bare repository per app that keeps what was fetched before, so a fetch moves only new objects."""

    path: Path
    clone_url: str
    env: dict[str, str]
    secrets: list[Secret | str | None] = field(default_factory=list)

    @property
    def git(self) -> Git:
        return Git(self.path, env=self.env)

    def ensure(self) -> None:
        if not (self.path / "HEAD").exists():
            make_private_directory(self.path)  # the app's source: 0700
            self._run("init", "--quiet", "--bare", str(self.path), where=self.path.parent)

    def fetch_refs(self, refspec: str) -> None:
        self.ensure()
        self._run("fetch", "--quiet", "--no-tags", "--prune", "--end-of-options", self.clone_url, refspec)

    def fetch(self, refspec: str, commit: str) -> str:
        """Fetch ``refspec`` (and ``commit`` itself when the refspec no longer leads to it); returns
        the full SHA of the commit."""
        self.fetch_refs(refspec)
        if not self._has_commit(commit):
            # Force-pushed away since the push: ask for the object itself.
            self._run("fetch", "--quiet", "--no-tags", "--end-of-options", self.clone_url, commit, check=False)
        if not self._has_commit(commit):
            raise MirrorFailed(f"commit {commit[:12]} is not in {self.clone_url} any more",
                               hint="It was probably force-pushed away; push it again to test it")
        return self.git.text("rev-parse", "--verify", "--end-of-options", f"{commit}^{{commit}}")

    def ls_remote(self, ref: str) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        done = self._run("ls-remote", "--end-of-options", self.clone_url, ref, where=self.path.parent)
        for line in done.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        return None

    def is_ancestor(self, older: str, newer: str) -> bool:
        done = self.git.run("merge-base", "--is-ancestor", older, newer, check=False)
        return done.returncode == 0

    def _has_commit(self, commit: str) -> bool:
        return self.git.run("cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0

    def _run(self, *args: str, where: Path | None = None, check: bool = True) -> str:
        done = Git(where or self.path, env=self.env).run(*args, check=False)
        if check and done.returncode != 0:
            detail = redact(done.stderr.decode(errors="replace").strip(), self.secrets).splitlines()
            raise MirrorFailed(f"git {args[0]} from {self.clone_url} failed: "
                               f"{detail[-1] if detail else 'exit ' + str(done.returncode)}",
                               hint="Check gate.apps.NAME.clone_url and the clone token")
        return done.stdout.decode(errors="replace")


@dataclass(frozen=True)
class TestedTree(Git):
    """The mirror, whose ``git archive`` of the tested commit returns the very bytes the tests ran
    on: what is deployed is byte for byte what was tested, and the 10 MB are not made twice."""

    tested: tuple[str, bytes] | None = None

    def archive(self, commit: str) -> bytes:
        if self.tested is not None and self.tested[0] == commit:
            return self.tested[1]
        return super().archive(commit)


# --- the worker -------------------------------------------------------------------------------

def smoke_only(settings: Settings, app_name: str, app: AppSettings) -> DeploySteps:
    """The steps of a gate that was handed none: the smoke check after the deploy, nothing before."""
    return DeploySteps(post=DEFAULT_POST_DEPLOY_STEPS)


@dataclass
class WorkerContext:
    """What every worker shares, gathered once by the service."""

    settings: Settings
    directory: Path
    queue: RunQueue
    statuses: ForgejoStatuses | None
    notifier: Notifier
    secrets: list[Secret | str | None]
    public_url: str
    env: Mapping[str, str]
    clock: Clock
    deployer_for: Callable[[GateTarget], Deployer]
    on_finish: Callable[[Run, str], None] = lambda run, status: None
    #: How the pushed test suites are kept from the gate's secrets (resolved once by the service).
    isolation: Isolation = NO_ISOLATION
    #: The steps around each deploy of an app (``railguard gate serve`` hands
    #: :func:`railguard.rehearsal.steps.deploy_steps`, which the gate may not import); by
    #: default only the smoke check after it.
    steps_for: Callable[[Settings, str, AppSettings], DeploySteps] = smoke_only

    def run_url(self, run_id: int) -> str:
        return run_url(self.public_url, run_id)

    def log_path(self, run_id: int) -> Path:
        return self.directory / "logs" / f"{run_id}.log"


class AppWorker:
    """The thread that works through one app's queue, one run at a time."""

    def __init__(self, context: WorkerContext, target: GateTarget) -> None:
        self.context = context
        self.target = target
        self.wake = threading.Event()
        #: Set once the start-up catch-up and mirror fetch are done (or failed).
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.current: int | None = None
        token = read_secret(target.gate.clone_token_env, context.env) if target.gate.clone_token_env else None
        env = git_environment(context.env, token)
        # The header git sends carries the token base64-encoded: scrub that form from git's messages too.
        header = Secret(env["GIT_CONFIG_VALUE_0"].rsplit(" ", 1)[-1]) if token is not None else None
        self.mirror = Mirror(context.directory / "mirrors" / f"{target.name}.git", target.gate.clone_url, env,
                             secrets=[*context.secrets, token, header])
        self.thread = threading.Thread(target=self._loop, name=f"gate-worker-{target.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def _loop(self) -> None:
        try:
            self.catch_up()
            # Fill the mirror now, so the first push after a start fetches only what it adds.
            self.mirror.fetch_refs(self._refspec())
        except RailguardError as exc:
            log.warning("catch-up for %s failed: %s", self.target.name, redact(exc.message, self.context.secrets))
        self.ready.set()
        while not self.stopping.is_set():
            if self.wake.wait(timeout=1.0):
                self._settle()
            self.wake.clear()
            run = self.context.queue.claim_next(self.target.name, now=self.context.clock())
            if run is None:
                self.context.queue.checkpoint()
                continue
            self.current = run.id
            try:
                self.process(run)
            except Exception as exc:  # a bug in one run must not stop the app's queue
                log.exception("run %s of %s failed unexpectedly", run.id, self.target.name)
                self._finish(run, "error", f"internal error: {type(exc).__name__}: {exc}")
            finally:
                self.current = None

    def _settle(self) -> None:
        """Let a burst of deliveries end before taking the newest: a script or a rebase that pushes
        ten times in a second costs one run, and the worker stays off the CPU (and the GIL) while
        the webhook handler answers the burst. Bounded, so a steady stream cannot starve the queue."""
        deadline = time.monotonic() + SETTLE_LIMIT
        self.wake.clear()
        while time.monotonic() < deadline and self.wake.wait(timeout=SETTLE_QUIET):
            self.wake.clear()

    # --- catch-up ---------------------------------------------------------------------------

    def catch_up(self) -> int | None:
        """Queue the branch head when it is not the commit the gate last knew of (a missed webhook).

        On the very first start there is nothing to compare with: the head is recorded as the
        baseline and not deployed (docs/gate.md, "Catching up")."""
        if self.target.gate.deploy_tags:
            return None
        ref = f"refs/heads/{self.target.gate.branch}"
        head = self.mirror.ls_remote(ref)
        if head is None:
            log.warning("catch-up: %s has no branch %s", self.target.gate.clone_url, self.target.gate.branch)
            return None
        known = self.context.queue.known_commit(self.target.name)
        if known is None:
            # First look at this app: the head is what already runs, not a push the gate missed.
            self.context.queue.set_baseline(self.target.name, head, now=self.context.clock())
            log.info("first start for %s: %s is the baseline; later pushes are tested", self.target.name, head[:12])
            return None
        if known == head:
            return None
        queued = self.context.queue.enqueue(app=self.target.name, commit=head, ref=ref, source="catch-up",
                                            now=self.context.clock(),
                                            title="branch head found on start (a push the gate did not see)")
        log.info("catch-up: queued %s of %s (last known: %s)", head[:12], self.target.name,
                 known[:12] if known else "none")
        self.wake.set()
        return queued.run_id

    # --- one run ----------------------------------------------------------------------------

    def process(self, run: Run) -> None:
        context, target = self.context, self.target
        out = RunLog(context.log_path(run.id), context.secrets)
        out.line(f"run {run.id}: {target.name} {run.ref} at {run.commit_sha} ({run.source})")
        if run.commit_sha == self._live_commit():
            # Its statuses were posted when it was tested; nothing to fetch, test or post again.
            out.line(f"skipped: {run.commit_sha[:12]} is already live (deploy history)")
            self._finish(run, "skipped", "already live")
            return
        # Fetch (and peel) before the first status: for an annotated tag the push's `after` is the
        # tag object (Forgejo services/repository/push.go, pushUpdates), and a status posted on it
        # never shows on the commit.
        refspec = f"+{run.ref}:{run.ref}" if run.ref.startswith("refs/tags/") else self._refspec()
        try:
            commit = self.mirror.fetch(refspec, run.commit_sha)
        except (MirrorFailed, GitError) as exc:
            out.line(f"fetch failed: {exc.message}")
            if run.ref.startswith("refs/heads/"):  # a branch's `after` is a commit; a tag's may not be
                self._status(run, run.commit_sha, "error", "could not fetch the commit", out)
            self._finish(run, "error", exc.message)
            return
        if commit != run.commit_sha:
            out.line(f"{run.ref}: {run.commit_sha[:12]} is a tag object; its commit is {commit}")
            context.queue.update(run.id, commit_sha=commit)
            run.commit_sha = commit
        self._status(run, commit, "pending", "testing", out)
        live = self._live_commit()
        if live and (live == commit or self.mirror.is_ancestor(commit, live)):
            why = "already live" if live == commit else f"older than the live {live[:12]}"
            out.line(f"skipped: {commit[:12]} is {why} (deploy history)")
            self._status(run, commit, "warning", f"not tested or deployed: {why}", out)
            self._finish(run, "skipped", why)
            return
        tested = self._test(run, commit, out)
        if tested is not None:
            self._deploy(run, commit, tested, out)

    def _test(self, run: Run, commit: str, out: RunLog) -> bytes | None:
        """Test the commit; the tar the tests ran on when they passed (and the run goes on to deploy
        it), None when the run ended here."""
        context, target = self.context, self.target
        try:
            tar = self.mirror.git.archive(commit)
        except GitError as exc:
            self._unusable_tree(run, commit, exc.message, out)
            return None
        out.line(f"$ {' '.join(target.test_command)}  (timeout {target.test_timeout:g}s, clean environment; "
                 f"{context.isolation.describe()})")
        if not context.isolation.isolated:
            out.line(f"WARNING: {context.isolation.describe()}")
        context.queue.update(run.id, tests_started_at=context.clock())
        try:
            result = test_tree(tar, target.test_command, commit=commit, env=context.env, pass_env=target.gate.pass_env,
                               timeout=target.test_timeout, tail_lines=target.app.deploy.output_tail_lines,
                               isolation=context.isolation, on_line=lambda line: out.line(f"  | {line}"),
                               cancel=self.stopping, prefix=f"railguard-gate-{run.id}-")
        except TreeUnusable as exc:
            self._unusable_tree(run, commit, exc.reason, out)
            return None
        except SuiteCommandMissing as exc:
            context.queue.update(run.id, tests_finished_at=context.clock())
            out.line(exc.message)
            self._status(run, commit, "error", exc.message, out)
            self._finish(run, "error", exc.message)
            return None
        context.queue.update(run.id, tests_finished_at=context.clock())
        summary = result.summary()
        out.line(summary)
        # Whoever reads the commit status learns that the tests could have read the gate's secrets.
        status_note = "" if context.isolation.isolated else " (WARNING: tests not isolated)"
        if result.cancelled:
            # The run stays "running": the next start marks it interrupted and queues it again.
            return None
        if not result.passed:
            self._status(run, commit, "failure", summary + status_note, out)
            self._notify_failed(f"{target.name}: {commit[:12]} not deployed, tests failed", summary)
            self._finish(run, "failed", summary)
            return None
        self._status(run, commit, "success", summary + status_note, out)
        return tar

    def _unusable_tree(self, run: Run, commit: str, message: str, out: RunLog) -> None:
        out.line(f"cannot prepare the tree: {message}")
        self._status(run, commit, "error", "could not extract the commit", out)
        self._finish(run, "error", message)

    def _deploy(self, run: Run, commit: str, tar: bytes, out: RunLog) -> None:
        """Call the library's locked pipeline, then map its report to the run's status.

        The pipeline tells the owner what happened (the job is unattended: every failure once,
        the smoke check's "deploy OK" or "deploy FAILED"); the worker adds only what nobody else
        can know, "deploy OK" when no smoke check looked at the app."""
        context, target = self.context, self.target
        steps = context.steps_for(context.settings, target.name, target.app)
        job = DeployJob(settings=context.settings, app_name=target.name, app=target.app,
                        deployer=context.deployer_for(target),
                        state=DeployState(state_path(context.settings.state_dir, target.app.deploy.state_file)),
                        git=TestedTree(self.mirror.path, env=self.mirror.env, tested=(commit, tar)),
                        clock=context.clock, pre_deploy=steps.pre, post_deploy=steps.post,
                        notifier=context.notifier, unattended=True, isolation=context.isolation)
        context.queue.update(run.id, deploy_called_at=context.clock())
        legacy = target.gate.deploy_mode == "legacy-webhook"
        try:
            if legacy:
                out.line(f"calling CapRover's build webhook for {target.gate.branch} (it builds the branch head, "
                         f"expected {commit[:12]})")
                report = deploy_branch_head(job, target.gate.branch, commit, env=context.env)
            else:
                out.line(f"deploying {commit} to CapRover app {job.deployer.app} (upload of the tested tree)")
                report = deploy_commit(job, commit)
        except DeployBlocked as exc:
            self._blocked(run, commit, exc, out)
            return
        except RailguardError as exc:
            message = redact(exc.message, context.secrets)
            out.line(f"deploy failed: {message}")
            self._finish(run, "deploy_failed", message)
            return
        context.queue.update(run.id, deploy_id=report.record.id)
        self._log_report(report, out)
        problem = post_deploy_problem(report, commit, legacy=legacy)
        if problem is not None:
            self._after_bad_deploy(run, job, commit, problem, out, report.facts.get(DATA_ROLLBACK_FACT))
            return
        if report.checked is StepStatus.SKIPPED:
            out.line(f"no smoke check: apps.{target.name}.url is not set"
                     + ("; the live commit cannot be confirmed" if legacy else ""))
            if target.app.smoke.notify_ok:
                delivery = context.notifier.notify(
                    "deploy_ok", f"{target.name} deploy OK {commit[:12]}",
                    f"{target.name} deploy OK {commit[:12]} (tested by the gate: {context.run_url(run.id)})",
                    key=f"deploy_ok:{target.name}:{commit}", now=context.clock())
                out.line(f"notification deploy_ok: {delivery.status}")
            self._finish(run, "deployed", f"deployed {commit[:12]}")
            return
        self._finish(run, "deployed", f"deployed {commit[:12]}; {_passed(report)}")

    @staticmethod
    def _log_report(report: DeployReport, out: RunLog) -> None:
        for step in report.pre_steps:
            _log_step("pre-deploy", step, out)
        out.line(f"CapRover: {report.record.result}"
                 + (f", version {report.record.version} ({report.record.image})"
                    if report.record.version is not None else ""))
        for step in report.steps:
            _log_step("post-deploy", step, out)

    def _blocked(self, run: Run, commit: str, blocked: DeployBlocked, out: RunLog) -> None:
        """A pre-deploy step failed (the rehearsal of the commit on a copy of the real data, say):
        CapRover was never called. The commit's status says ``success`` for its tests, and
        Forgejo shows a commit's newest status of each context, so a ``failure`` in the same
        context follows: the commit must not read as good to go. The owner has heard of it from
        the pipeline (the job is unattended)."""
        for step in blocked.steps:
            _log_step("pre-deploy", step, out)
        failed = blocked.failed_step
        summary = redact(f"{failed.name} failed: {failed.summary}", self.context.secrets)
        out.line(f"not deployed: {summary}")
        self._status(run, commit, "failure", f"tests passed, not deployed: {summary}", out)
        self._finish(run, "blocked", f"not deployed: {summary}")

    def _after_bad_deploy(self, run: Run, job: DeployJob, commit: str, reason: str, out: RunLog,
                          data: Mapping[str, Any] | None = None) -> None:
        """Roll back when configured. The owner has heard of the bad deploy from its smoke check,
        and hears of the rollback from the pipeline: "rolled back to" from the rollback's smoke
        check, or "rollback FAILED". The rollback never touches the data: when the deploy changed
        the schema (``data``, the post-deploy fact of railguard.rehearsal), the run's log and one
        notification say that a data rollback may be needed, and the command for it."""
        context, target = self.context, self.target
        out.line(f"after the deploy: {reason}")
        if not target.gate.rollback_on_smoke_failure:
            if data is not None:
                self._tell_data_not_rolled_back(run, data, str(data.get("rollback_command")), out)
            self._finish(run, "smoke_failed", f"deployed {commit[:12]} but the smoke check failed: {reason}")
            return
        try:
            report = rollback(job, None)
        except RailguardError as exc:
            message = redact(exc.message, context.secrets)
            out.line(f"rollback failed: {message}")
            self._finish(run, "smoke_failed", f"smoke check failed ({reason}); rollback failed: {message}")
            return
        target_commit = (report.record.git_hash or "?")[:12]
        what = f"{target_commit} ({report.record.image})" if report.record.image else target_commit
        out.line(f"rolled back to {what}" + "".join(f"; {step.summary}" for step in report.steps))
        if data is not None:
            # The image is back already: `rollback --with-data` now would go back one deploy more.
            self._tell_data_not_rolled_back(run, data, str(data.get("restore_command")), out)
        self._finish(run, "rolled_back", f"smoke check failed ({reason}); rolled back to {what}")

    def _tell_data_not_rolled_back(self, run: Run, data: Mapping[str, Any], command: str, out: RunLog) -> None:
        changes = "; ".join(str(change) for change in data.get("changes") or []) or "see the deploy's steps"
        line = (f"the data was not rolled back: the deploy changed the schema since the pre-deploy snapshot "
                f"{data.get('snapshot')} ({changes}); a data rollback may be needed: {command}")
        out.line(line)
        try:
            delivery = self.context.notifier.notify(
                "rollback", f"{self.target.name}: data not rolled back", redact(line, self.context.secrets),
                key=f"data_rollback:{self.target.name}:{run.id}", now=self.context.clock())
            out.line(f"notification rollback (data): {delivery.status}")
        except Exception as exc:  # the notification path never changes the run's outcome
            log.warning("the data rollback notification could not be sent: %s", exc)

    # --- helpers ----------------------------------------------------------------------------

    def _refspec(self) -> str:
        if self.target.gate.deploy_tags:
            return "+refs/tags/*:refs/tags/*"
        return f"+refs/heads/{self.target.gate.branch}:refs/heads/{self.target.gate.branch}"

    def _live_commit(self) -> str | None:
        """The commit running now as far as the deploy history knows (gate, CLI and rollbacks alike)."""
        state = DeployState(state_path(self.context.settings.state_dir, self.target.app.deploy.state_file))
        live = next((record for record in state.history(self.target.name) if record.is_live_candidate), None)
        return live.git_hash if live else None

    def _status(self, run: Run, commit: str, state: State, description: str, out: RunLog) -> None:
        if self.context.statuses is None:
            return
        posted = self.context.statuses.post(self.target.gate.repository, commit, state, description,
                                            self.context.run_url(run.id))
        if not posted.ok:
            out.line(f"commit status: {posted.detail}")

    def _finish(self, run: Run, status: Status, summary: str) -> None:
        summary = redact(summary, self.context.secrets)
        self.context.queue.finish(run.id, status, summary, now=self.context.clock())
        RunLog(self.context.log_path(run.id), self.context.secrets).line(f"run {run.id}: {status}: {summary}")
        log.info("run %s of %s: %s: %s", run.id, self.target.name, status, summary)
        self.context.on_finish(run, status)
        # Bounded history: the run pages and logs of the newest runs are what anyone reads.
        for old in self.context.queue.forget_old_runs(self.target.name, keep=RUNS_KEPT_PER_APP):
            self.context.log_path(old).unlink(missing_ok=True)

    def _notify_failed(self, title: str, body: str) -> None:
        """The tests failed: the one notification of a run the pipeline never saw."""
        self.context.notifier.notify("deploy_failed", title, redact(body, self.context.secrets),
                                     now=self.context.clock())


def _log_step(when: str, step: StepResult, out: RunLog) -> None:
    """A step's line in the run's log, then what it checked and the lines it gives
    (``details["lines"]``: the rehearsal's checks, schema changes and the app's output)."""
    said = step.skipped if step.skipped is not None else step.summary
    out.line(f"{when} {step.name}: {_IN_THE_LOG[step.status]}: {said}")
    for check in step.details.get("checks") or []:
        out.line(f"  {'ok    ' if check.get('ok') else 'FAILED'} {check.get('name')}: {check.get('detail')}")
    for line in step.details.get("lines") or []:
        out.line(f"  {line}")


def post_deploy_problem(report: DeployReport, commit: str, *, legacy: bool) -> str | None:
    """Pure: what went wrong after the deploy of the tested ``commit``, in words; None when nothing
    did. In legacy mode a failed check that met another live commit is the mode's race (CapRover's
    webhook built a later branch head), said as such."""
    failed = report.failed_step
    if failed is None:
        return None
    live = failed.live_commit
    if legacy and live and not same_commit(live, commit):
        return (f"live commit {live[:12]} is not the tested {commit[:12]}: CapRover's build webhook built a "
                "later branch head (the legacy mode's race)")
    return f"{failed.name}: {failed.summary}"


def _passed(report: DeployReport) -> str:
    return "; ".join(step.summary for step in report.steps if step.status is StepStatus.PASSED)
