"""Boot the app on a private copy of a database and prove it serves: the one implementation that
the restore drill (:mod:`railguard.drill.runner`) and the deploy rehearsal
(:mod:`railguard.rehearsal.rehearse`) share.

The order of work, each a timed :class:`Step` in the caller's record:

1. ``start``: the launch plan (:func:`railguard.drill.launch.plan_launch`) started in its own
   process group, dying with railguard, watched by the caller's
   :class:`~railguard.drill.process.Watchdog` (so a railguard killed by SIGKILL leaves no app
   and no container behind). The wall clock just before the spawn is kept: the app's
   ``app_started_at`` may not be earlier.
2. ``health``: ``/health`` must answer 200 within ``start_timeout``; an app that exits first
   fails at once with its exit code.
3. ``metrics``: ``migrations_ok`` 1 and ``app_started_at`` after the start, when exposed.
4. ``assertions``: the SQL assertions on the copy, read-only, while the app runs (after its
   migrations).
5. ``stop``: SIGTERM to the group, SIGKILL after ``stop_grace`` (Docker: ``docker stop``, then
   ``docker rm --force``), on every path: the stop is in a ``finally``.

The first failing step raises :class:`DrillStepFailed` (after the stop); the caller turns it into
its own report. What the hints say about the copy (``what``: "this backup", "the candidate
commit") is the caller's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from railguard.config import DrillSettings
from railguard.drill import process, serving
from railguard.drill.assertions import run_assertions
from railguard.drill.launch import LaunchPlan, plan_launch
from railguard.errors import CheckFailed, ConfigError, ExitCode, RailguardError
from railguard.progress import Progress, finish, stage_counter

OUTPUT_NAME = "app-output.log"
WORKSPACE_PREFIX = "railguard-drill-"  # process.py's watchdog removes only directories named so
#: ``docker run``'s own exit code when it could not start the container (no image, no engine).
DOCKER_RUN_FAILED = 125


class DrillStepFailed(CheckFailed):
    """The app did not boot on the copy, did not serve, or the copy failed an assertion."""


class DrillWorkspaceError(ConfigError):
    pass


@dataclass
class Step:
    name: str  # fetch | verify | start | health | metrics | assertions | stop (the rehearsal adds its own)
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail}


@dataclass(frozen=True)
class Confined:
    """How the app's command is started when its code is not trusted (the gate's rehearsal of a
    pushed commit): the command wrapped in a sandbox, or under the reaper as another account
    (:meth:`railguard.deploy.isolation.Isolation.command`)."""

    argv: list[str]
    #: In words, for the ``start`` step ("bwrap sandbox, host network").
    how: str = ""


@dataclass(kw_only=True)
class BootReport:
    """How a run that boots the app on a copy ended, and what the boot wrote into it: what the
    drill's report (:class:`railguard.drill.runner.DrillReport`) and the rehearsal's
    (:class:`railguard.rehearsal.rehearse.RehearsalReport`) share, in one place so that the two
    cannot drift apart. Each adds what names its run (the backup, its source, the commit) as
    positional fields: these are keyword-only, so those come first in its constructor.
    """

    result: str = "failed"  # passed | failed | interrupted
    failed_step: str | None = None
    reason: str | None = None
    hint: str | None = None
    exit_code: ExitCode = ExitCode.CHECK_FAILED
    steps: list[Step] = field(default_factory=list)
    #: The last lines the app printed (stdout and stderr), kept when the run failed.
    output_tail: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    port: int | None = None
    app_pid: int | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.result == "passed"

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)


def free_port() -> int:
    """A port nobody listens on right now (the app binds it a moment later; a race with
    another process shows up as the app failing to bind, or as a wrong app_started_at)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]  # the socket module types an address as Any
        return port


def make_workspace(drill: DrillSettings, production_db: Path, label: str) -> Path:
    """A fresh private directory (mkdtemp: 0700, a name nobody can have planted) with nothing in
    common with the production data directory, named so that the watchdog may remove it."""
    parent = Path(drill.scratch_dir or tempfile.gettempdir()).resolve()
    production_dir = production_db.resolve().parent
    if parent == production_dir or production_dir in parent.parents:
        raise DrillWorkspaceError(f"drill scratch_dir {parent} is inside the production data directory "
                                  f"{production_dir}", hint="Point [drill] scratch_dir somewhere else (or unset it)")
    try:
        return Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{label}-", dir=parent))
    except OSError as exc:
        raise DrillWorkspaceError(f"cannot create the drill directory in {parent}: {exc.strerror or exc}",
                                  hint="Set [drill] scratch_dir to a writable directory with room for the "
                                       "database") from exc


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of ``path`` (read from its last 64 KiB at most)."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return text.splitlines()[-lines:]


@contextlib.contextmanager
def timed_step(record: BootReport, name: str, on_step: Callable[[Step], None] | None = None) -> Iterator[Step]:
    """A step appended to ``record``: ok when the block ends normally, its detail the error
    otherwise; ``on_step`` is told each step once it ended (the gate's run log)."""
    entry = Step(name)
    record.steps.append(entry)
    started = time.monotonic()
    try:
        yield entry
    except RailguardError as exc:
        entry.detail = exc.message
        raise
    except BaseException as exc:
        entry.detail = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        raise
    else:
        entry.ok = True
    finally:
        entry.seconds = time.monotonic() - started
        if on_step is not None:
            on_step(entry)


class AppBoot:
    """One boot of the app on ``copy`` (a file in its own fresh directory inside ``workspace``).

    ``drill`` is the effective drill configuration (the rehearsal hands one with its own
    command, image and timeout); ``placeholders`` adds to ``{db}``, ``{dir}``, ``{port}`` (the
    rehearsal's ``{tree}``); ``cwd`` replaces the drill's working directory; ``on_step`` is told
    each step once it ended."""

    def __init__(self, app_name: str, drill: DrillSettings, *, production_db: Path, record: BootReport,
                 workspace: Path, watchdog: process.Watchdog, env: Mapping[str, str], docker: str = "docker",
                 on_started: Callable[[], None] | None = None, progress: Progress | None = None,
                 placeholders: Mapping[str, str] | None = None, cwd: str | None = None,
                 what: str = "this backup", on_step: Callable[[Step], None] | None = None,
                 timeout_key: str = "[drill] start_timeout",
                 confine: Callable[[LaunchPlan], Confined] | None = None) -> None:
        self.app_name = app_name
        self.drill = drill
        self.production_db = production_db
        self.record = record
        self.workspace = workspace
        self.watchdog = watchdog
        self.env = env
        self.docker = docker
        self.on_started = on_started
        self.progress = progress
        self.placeholders = dict(placeholders or {})
        self.cwd = cwd
        self.what = what
        self.on_step = on_step
        #: The setting a slow app's hint names.
        self.timeout_key = timeout_key
        #: Command mode: how the plan's command is started when its code is not trusted (called
        #: in the ``start`` step, which fails with what it raises); None: as the plan says.
        self.confine = confine
        #: True from the spawn until the process group is known to be stopped.
        self.app_running = False
        #: Epoch ms just before the spawn: the app's app_started_at cannot be earlier.
        self.started_wall_ms = 0.0

    @property
    def output(self) -> Path:
        """Where the app's stdout and stderr go."""
        return self.workspace / OUTPUT_NAME

    def step(self, name: str) -> contextlib.AbstractContextManager[Step]:
        return timed_step(self.record, name, self.on_step)

    def plan(self, copy: Path, port: int) -> LaunchPlan:
        return plan_launch(self.drill, app_name=self.app_name, copy=copy, port=port,
                           production_db=self.production_db, environ=self.env, docker=self.docker,
                           placeholders=self.placeholders, cwd=self.cwd)

    def serve(self, copy: Path, *, assertion_hint: str) -> None:
        """Start, health, metrics, assertions, stop; raises :class:`DrillStepFailed` at the first
        failing step (the app stopped by then)."""
        port = free_port()
        self.record.port = port
        plan = self.plan(copy, port)
        with self.running(plan) as app_process:
            self._check_health(plan, port, app_process)
            self._check_metrics(port)
            if self.drill.assertions:
                with self.step("assertions") as step:
                    results = run_assertions(copy, self.drill.assertions, now=datetime.now(timezone.utc))
                    failed = [result for result in results if not result.ok]
                    step.detail = "; ".join(f"{r.sql}: {r.detail}" for r in results)
                    if failed:
                        raise DrillStepFailed(f"assertion failed: {failed[0].sql}: {failed[0].detail}",
                                              hint=assertion_hint)

    @contextlib.contextmanager
    def running(self, plan: LaunchPlan) -> Iterator[subprocess.Popen[bytes]]:
        grace = self.drill.stop_grace.total_seconds()
        watchdog = self.watchdog
        app_process: subprocess.Popen[bytes] | None = None
        try:
            with self.step("start") as step:
                if plan.container:
                    watchdog.watch_container(plan.container)
                confined = self.confine(plan) if self.confine is not None and not plan.container \
                    else Confined(plan.argv)
                with self.output.open("ab") as output:
                    try:
                        app_process = process.spawn(confined.argv, env=plan.env, cwd=plan.cwd, output=output)
                        self.app_running = True
                    except OSError as exc:
                        raise DrillStepFailed(f"cannot start the app: {plan.argv[0]}: {exc.strerror or exc}",
                                              hint="Check [drill] command (or that docker is installed)") from exc
                watchdog.watch_group(app_process.pid, grace)
                self.started_wall_ms = (time.time() - 1.0) * 1000  # 1 s: the app's clock reads ms, ours may round
                self.record.app_pid = app_process.pid
                what = f"image {self.drill.image}" if plan.container else " ".join(plan.argv[:3])
                if confined.how:
                    what += f" ({confined.how})"
                step.detail = f"pid {app_process.pid}, port {self.record.port}, {what}"
            if self.on_started is not None:
                self.on_started()
            yield app_process
        finally:
            if app_process is not None:
                with self.step("stop") as step:
                    step.detail = self._stop(plan, app_process, grace)
                    self.app_running = False

    def _stop(self, plan: LaunchPlan, app_process: subprocess.Popen[bytes], grace: float) -> str:
        if plan.container:
            # docker stop: SIGTERM to the container's main process, SIGKILL after --time.
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run([self.docker, "stop", "--time", str(int(max(grace, 1))), plan.container],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=grace + 60, check=False)
        stopped = process.stop_group(app_process, grace)
        if plan.container:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run([self.docker, "rm", "--force", plan.container], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=60, check=False)
        how = "SIGKILL after the grace period" if stopped.killed else "SIGTERM"
        return f"exit code {stopped.exit_code}, stopped by {how} in {stopped.seconds:.1f}s"

    def _check_health(self, plan: LaunchPlan, port: int, app_process: subprocess.Popen[bytes]) -> None:
        path = self.drill.health_path
        timeout = self.drill.start_timeout.total_seconds()
        with self.step("health") as step:
            total = round(timeout * 1000)  # a waiting stage counts milliseconds (railguard.progress)
            stage_counter(self.progress, "health", total)
            waited = serving.wait_for_health(f"http://127.0.0.1:{port}{path}", timeout=timeout,
                                             exit_code=app_process.poll, waited=_waiting(self.progress, total))
            if waited.exited_with == DOCKER_RUN_FAILED and plan.container:
                raise DrillStepFailed(
                    f"docker run failed (exit {DOCKER_RUN_FAILED}) before the app started",
                    hint="See the output in the report: check [drill] image and that the Docker engine runs")
            if waited.exited_with is not None:
                raise DrillStepFailed(
                    f"the app exited with code {waited.exited_with} before {path} answered 200 "
                    f"(last answer: {waited.last.describe()})",
                    hint=f"Its output is in the report: the app cannot boot on {self.what}")
            if not waited.ok:
                raise DrillStepFailed(
                    f"{path} did not answer 200 within {timeout:g}s (last answer: {waited.last.describe()})",
                    hint=f"The app cannot serve {self.what}: see its output in the report "
                         f"(or raise {self.timeout_key} if it is only slow)")
            step.detail = f"200 after {waited.seconds:.1f}s ({waited.attempts} request(s))"
            finish(self.progress, "health", total)

    def _check_metrics(self, port: int) -> None:
        with self.step("metrics") as step:
            answer = serving.fetch(f"http://127.0.0.1:{port}{self.drill.metrics_path}")
            verdict = serving.judge_metrics(answer, migrations_metric=self.drill.migrations_metric,
                                            started_metric=self.drill.started_metric,
                                            started_not_before_ms=self.started_wall_ms)
            step.detail = verdict.detail
            if not verdict.ok:
                raise DrillStepFailed(verdict.detail, hint=f"The app started but is not healthy on {self.what}")


def _waiting(progress: Progress | None, total: int) -> Callable[[float], None] | None:
    """The ``health`` stage's count from the seconds waited (never past the timeout)."""
    if progress is None:
        return None
    return lambda seconds: progress("health", min(round(seconds * 1000), total), total)
