"""The gate as a library: what the HTTP handlers in :mod:`railguard.gate.app` call.

:class:`GateService` owns the run queue, one :class:`~railguard.gate.worker.AppWorker` per app,
the metrics, and the two things that arrive over HTTP: a Forgejo webhook
(:meth:`GateService.receive_webhook`, answered at once, the work queued) and a pre-receive
check (:meth:`GateService.check_push`, answered when the test suite has run).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from railguard.config import AppSettings, Settings
from railguard.deploy.actions import build_deployer
from railguard.deploy.deployer import Deployer
from railguard.deploy.hook.run import RefUpdate, decide as decide_ref
from railguard.deploy.isolation import Isolation, resolve_isolation
from railguard.deploy.pipeline import TreeUnusable, is_full_sha, test_tree
from railguard.deploy.steps import DeploySteps
from railguard.deploy.suite import SuiteCommandMissing
from railguard.errors import ConfigError
from railguard.gate.forgejo import ForgejoStatuses
from railguard.gate.queue import QUEUE_NAME, Run, RunQueue, gate_directory
from railguard.gate.target import GateTarget
from railguard.gate.webhook import (
    MalformedPayload,
    SignatureInvalid,
    decide,
    parse_delivery,
    signed_payload,
    verify_signature,
)
from railguard.gate.worker import AppWorker, RunLog, WorkerContext, read_log, smoke_only
from railguard.notify.notifier import Notifier
from railguard.secrets import Secret, presented, read_secret, redact

log = logging.getLogger("railguard.gate")
#: How long a delivery id is remembered for spotting a replay.
DELIVERY_MEMORY = timedelta(days=90)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer the handler sends as it is."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class CheckAnswer:
    passed: bool
    lines: list[str]
    run_id: int | None = None

    def text(self) -> str:
        """What the sh hook reads: ``pass`` or ``fail`` on the first line, then lines for the pusher."""
        return "\n".join(["pass" if self.passed else "fail", *self.lines]) + "\n"


class GateMetrics:
    def __init__(self, queue: RunQueue) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter("railguard_gate_deliveries", "Webhook deliveries by outcome",
                                  ["outcome"], registry=self.registry)
        self.handler_seconds = Histogram("railguard_gate_webhook_seconds", "Time to answer a webhook delivery",
                                         registry=self.registry,
                                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
        self.checks = Counter("railguard_gate_checks", "Pre-receive checks by result", ["result"],
                              registry=self.registry)
        self.runs_finished = Counter("railguard_gate_runs_finished", "Runs finished by app and status",
                                     ["app", "status"], registry=self.registry)
        self.workers_alive = Gauge("railguard_gate_workers_alive", "Worker threads running", registry=self.registry)
        registry = self.registry

        class QueueCollector:
            def collect(self) -> Any:
                family = GaugeMetricFamily("railguard_gate_runs", "Runs in the queue by app and status",
                                           labels=["app", "status"])
                for (app, status), number in sorted(queue.counts().items()):
                    family.add_metric([app, status], number)
                yield family

        registry.register(QueueCollector())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class GateService:
    def __init__(self, settings: Settings, *, env: Mapping[str, str] = os.environ,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 deployer_for: Callable[[GateTarget], Deployer] | None = None,
                 steps_for: Callable[[Settings, str, AppSettings], DeploySteps] | None = None) -> None:
        gate = settings.gate
        if not gate.apps:
            raise ConfigError("the gate has no app to deploy",
                              hint="Add [gate.apps.NAME] with repository and clone_url (docs/gate.md)")
        self.settings = settings
        self.env = env
        self.clock = clock
        self.webhook_secret = read_secret(gate.secret_env, env, required=True)
        self.check_secret = read_secret(gate.check_secret_env, env)
        self.read_token = read_secret(gate.read_token_env, env)
        if self.read_token is None and not gate.listen.is_loopback:
            raise ConfigError(f"gate.host = {gate.host!r} is not a loopback address and ${gate.read_token_env} "
                              "is not set: anyone who reaches the gate could read every run and its test log",
                              hint=f"Export {gate.read_token_env} (or {gate.read_token_env}_FILE), "
                                   'or listen on host = "127.0.0.1" behind a proxy')
        forgejo_token = read_secret(gate.forgejo_token_env, env)
        self.targets = {name: GateTarget.resolve(settings, name) for name in gate.apps}
        secret_vars = [gate.secret_env, gate.check_secret_env, gate.read_token_env, gate.forgejo_token_env,
                       settings.notifications.urls_env, *settings.notifications.routes.values()]
        app_secrets: list[Secret | str | None] = []
        for target in self.targets.values():
            deploy = target.app.deploy
            app_secrets += [read_secret(deploy.token_env, env), read_secret(deploy.password_env, env),
                            read_secret(deploy.webhook_token_env, env)]
            secret_vars += [deploy.token_env, deploy.password_env, deploy.webhook_token_env]
            if target.gate.clone_token_env:
                app_secrets.append(read_secret(target.gate.clone_token_env, env))
                secret_vars.append(target.gate.clone_token_env)
        # Notification URLs carry tokens too (apprise's tgram://BOT_TOKEN/..., a webhook's path).
        for var in {settings.notifications.urls_env, *settings.notifications.routes.values()}:
            urls = read_secret(var, env)
            if urls is not None:
                app_secrets += urls.reveal().replace(",", " ").split()
        #: Every secret the gate holds: scrubbed from logs, run logs and answers.
        self.secrets: list[Secret | str | None] = [self.webhook_secret, self.check_secret, self.read_token,
                                                   forgejo_token, *app_secrets]
        self.directory = gate_directory(settings)
        # Pushed code must not reach any of it: the secret files, the state (queue, mirrors, logs).
        private = [Path(env[f"{var}_FILE"]) for var in dict.fromkeys(secret_vars) if env.get(f"{var}_FILE")]
        self.isolation: Isolation = resolve_isolation(
            gate.isolation, private=[*private, settings.state_dir, self.directory],
            read_only=gate.isolation_paths, where="gate.isolation")
        if not self.isolation.isolated:
            log.warning("pushed test suites are not isolated: %s", self.isolation.describe())
        self.queue = RunQueue(self.directory / QUEUE_NAME)
        self.metrics = GateMetrics(self.queue)
        statuses = ForgejoStatuses(gate.forgejo_url, forgejo_token) if gate.forgejo_url else None
        if statuses is None:
            log.warning("gate.forgejo_url is not set: no commit statuses will be posted")
        self.public_url = gate.public_url or gate.listen.url
        self.context = WorkerContext(
            settings=settings, directory=self.directory, queue=self.queue, statuses=statuses,
            notifier=Notifier(settings.notifications, settings.state_dir, env=env), secrets=self.secrets,
            public_url=self.public_url, env=env, clock=clock,
            deployer_for=deployer_for or (lambda target: build_deployer(target.name, target.app.deploy, env=env)),
            on_finish=lambda run, status: self.metrics.runs_finished.labels(run.app, status).inc(),
            isolation=self.isolation, steps_for=steps_for or smoke_only)
        for target in self.targets.values():
            # A missing caprover_url should stop the gate now, not fail the first tested commit.
            self.context.deployer_for(target)
        self.workers = {name: AppWorker(self.context, target) for name, target in self.targets.items()}
        self.metrics.workers_alive.set_function(lambda: sum(worker.alive for worker in self.workers.values()))
        self._checks = threading.BoundedSemaphore(gate.check_concurrency)
        self.started = False

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Re-queue interrupted runs, then start the workers (each catches up with its branch first)."""
        # A replay comes within minutes or days of the original; the ids need not live forever.
        self.queue.forget_deliveries(before=self.clock() - DELIVERY_MEMORY)
        for interrupted, again in self.queue.recover_interrupted(now=self.clock()):
            log.warning("run %s was interrupted by a restart; %s", interrupted,
                        f"queued again as run {again}" if again else "a newer run takes over")
        for worker in self.workers.values():
            worker.start()
        self.started = True

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.thread.join(timeout=5)

    def health(self) -> Answer:
        dead = [name for name, worker in self.workers.items() if self.started and not worker.alive]
        try:
            self.queue.counts()
        except Exception as exc:  # the queue file is the gate's memory: no queue, not healthy
            return Answer(503, {"ok": False, "problem": f"run queue unreadable: {exc}"})
        if dead:
            return Answer(503, {"ok": False, "problem": f"worker for {', '.join(dead)} stopped"})
        return Answer(200, {"ok": True, "apps": {name: {"running": worker.current, "ready": worker.ready.is_set()}
                                                  for name, worker in self.workers.items()}})

    # --- webhooks -----------------------------------------------------------------------------

    def receive_webhook(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Verify, judge and queue one delivery. Nothing slow happens here: Forgejo waits 5 s."""
        began = time.perf_counter()
        try:
            answer = self._webhook(body, headers)
        finally:
            self.metrics.handler_seconds.observe(time.perf_counter() - began)
        return answer

    def _webhook(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        assert self.webhook_secret is not None
        try:
            body = signed_payload(body, headers)
        except MalformedPayload as exc:
            self.metrics.deliveries.labels("malformed").inc()
            return Answer(400, {"ok": False, "error": exc.message})
        try:
            verify_signature(body, headers, self.webhook_secret.reveal().encode())
        except SignatureInvalid as exc:
            self.metrics.deliveries.labels("unauthorised").inc()
            log.warning("webhook refused: %s", exc.message)
            return Answer(401, {"ok": False, "error": exc.message})
        try:
            delivery = parse_delivery(body, headers)
            tag_prefix = {name: t.app.deploy.tag_prefix for name, t in self.targets.items()}
            verdict = decide(delivery, self.settings.gate.apps, tag_prefix=tag_prefix)
        except MalformedPayload as exc:
            self.metrics.deliveries.labels("malformed").inc()
            return Answer(400, {"ok": False, "error": exc.message})
        now = self.clock()
        if verdict.action == "ignore" or verdict.push is None:
            if delivery.delivery_id and not self.queue.seen_delivery(delivery.delivery_id, now=now,
                                                                     outcome="ignored"):
                self.metrics.deliveries.labels("duplicate").inc()
                return Answer(200, {"ok": True, "queued": False, "reason": "duplicate delivery, already handled"})
            self.metrics.deliveries.labels("ignored").inc()
            return Answer(202, {"ok": True, "queued": False, "reason": verdict.reason})
        push = verdict.push
        queued = self.queue.enqueue(app=push.app, commit=push.after, ref=push.ref, source="webhook", now=now,
                                    title=push.title, pusher=push.pusher, delivery_id=delivery.delivery_id)
        if queued.duplicate:
            self.metrics.deliveries.labels("duplicate").inc()
            if queued.same_as is None:
                return Answer(200, {"ok": True, "queued": False, "reason": "duplicate delivery, already handled"})
            run_id, status = queued.same_as
            return Answer(200, {"ok": True, "queued": False, "run": run_id,
                                "reason": f"{push.ref} at {push.after[:12]} is already run {run_id} ({status}): "
                                          "a replayed delivery queues nothing",
                                "url": self.context.run_url(run_id)})
        self.metrics.deliveries.labels("queued").inc()
        self.workers[push.app].wake.set()
        return Answer(202, {"ok": True, "queued": True, "run": queued.run_id, "reason": verdict.reason,
                            "url": self.context.run_url(queued.run_id or 0)})

    # --- pre-receive checks -------------------------------------------------------------------

    def authorised_check(self, authorization: str | None) -> bool:
        return self.check_secret is not None and presented(authorization, self.check_secret, basic=False)

    def authorised_reader(self, authorization: str | None) -> bool:
        """May this request read runs and logs? Without a read token (only allowed on loopback)
        anyone who reaches the port may; with one, ``Bearer TOKEN`` or, for a browser, HTTP Basic
        with the token as the password."""
        return self.read_token is None or presented(authorization, self.read_token)

    def check_push(self, *, app: str, ref: str, old: str, new: str, tar: bytes | None, pusher: str = "") -> CheckAnswer:
        """Test one pushed ref for the sh pre-receive hook; the answer says pass or fail."""
        target = self.targets.get(app)
        if target is None:
            return CheckAnswer(False, [f"railguard: the gate has no app {app!r} (known: {', '.join(self.targets)})"])
        if not (is_full_sha(old) and is_full_sha(new)):
            return CheckAnswer(False, [f"railguard: {ref!r}: old and new must be commit SHAs"])
        protected = [f"{target.app.deploy.tag_prefix}*"] if target.gate.deploy_tags else [target.gate.branch]
        [decision] = decide_ref([RefUpdate(old, new, ref)], protected,
                                allow_delete=target.app.deploy.allow_delete_protected)
        if decision.action != "test":
            passed = decision.action == "pass"
            self.metrics.checks.labels("pass" if passed else "fail").inc()
            return CheckAnswer(passed, [f"railguard: {ref}: {decision.reason}"])
        if not tar:
            return CheckAnswer(False, [f"railguard: {ref}: the hook sent no tree to test (git archive failed?)"])
        run_id = self.queue.start_check(app=app, commit=new, ref=ref, now=self.clock(), pusher=pusher)
        out = RunLog(self.context.log_path(run_id), self.secrets)
        out.line(f"check {run_id}: {app} {ref} at {new} (pre-receive)")
        with self._checks:
            passed, summary, tail = self._run_check(target, new, tar, out)
        now = self.clock()
        self.queue.update(run_id, status="passed" if passed else "failed", summary=redact(summary, self.secrets),
                          tests_finished_at=now, finished_at=now)
        self.metrics.checks.labels("pass" if passed else "fail").inc()
        lines = [f"railguard: testing {ref} at {new[:12]}: {' '.join(target.test_command)}"]
        if not self.isolation.isolated:
            lines.append(f"railguard: WARNING: {self.isolation.describe()}")
        if not passed and tail:
            lines.append(f"railguard: last {len(tail)} lines of the test output:")
            lines += [f"railguard:   | {line}" for line in tail]
        lines.append(f"railguard: {'passed' if passed else 'FAILED'}: {summary}")
        lines.append(f"railguard: log: {self.context.run_url(run_id)}")
        if not passed:
            lines.append(f"railguard: push rejected: {ref}: {summary}")
        return CheckAnswer(passed, [redact(line, self.secrets) for line in lines], run_id)

    def _run_check(self, target: GateTarget, commit: str, tar: bytes, out: RunLog) -> tuple[bool, str, list[str]]:
        out.line(f"$ {' '.join(target.test_command)}  (timeout {target.test_timeout:g}s, clean environment; "
                 f"{self.isolation.describe()})")
        try:
            result = test_tree(tar, target.test_command, commit=commit, env=self.env, pass_env=target.gate.pass_env,
                               timeout=target.test_timeout, tail_lines=target.app.deploy.output_tail_lines,
                               isolation=self.isolation, on_line=lambda line: out.line(f"  | {line}"),
                               prefix="railguard-check-")
        except TreeUnusable as exc:
            out.line(f"the body is not a usable tar: {exc.reason}")
            return False, f"the hook's git archive is not a usable tar ({exc.reason})", []
        except SuiteCommandMissing as exc:
            out.line(exc.message)
            return False, exc.message, []
        out.line(result.summary())
        return result.passed, result.summary(), [redact(line, self.secrets) for line in result.tail]

    # --- reading runs ---------------------------------------------------------------------------

    def runs(self, limit: int = 50) -> list[Run]:
        return self.queue.list(limit=limit)

    def run(self, run_id: int) -> tuple[Run, str]:
        run = self.queue.get(run_id)
        return run, redact(read_log(self.context.log_path(run_id)), self.secrets)
