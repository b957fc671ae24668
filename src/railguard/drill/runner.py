"""One restore drill, from choosing the backup to the line in ``drill.log``.

The steps, each timed and recorded: fetch (from a destination, when asked), verify (sha256
against the manifest, decompress, raw sha256, integrity_check and foreign_key_check: all in
:func:`railguard.backup.verify.materialize`; a page generation is rebuilt from its store and
checked instead, :func:`railguard.pages.rebuild.rebuild_generation`), start the app on the copy, wait for ``/health``,
read ``/metrics``, SQL assertions, stop. The first failing step ends the drill; the app is
stopped and the temporary directory removed whatever happened, including Ctrl-C and SIGTERM
(SIGKILL of railguard is covered by :mod:`railguard.drill.process`).

A failed drill is a result, not an exception: :func:`run_drill` returns a report whose exit code
says which kind of failure it was. Only problems before the drill starts (no such backup, no
drill configured) raise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from railguard.backup.catalog import BackupRecord, Owner, list_backups, resolve_backup
from railguard.backup.naming import stem_for
from railguard.backup.verify import VerifiedCopy, materialize
from railguard.pages.catalog import GenerationRecord, list_generations, resolve_generation
from railguard.pages.rebuild import RebuiltGeneration, rebuild_generation
from railguard.config import AppSettings, DrillSettings, Settings
from railguard.drill import process, serving
from railguard.drill.assertions import run_assertions
from railguard.drill.launch import LaunchPlan, plan_launch
from railguard.drill.log import LOG_NAME, PASSED, append_drill_line
from railguard.drill.selection import choose_random
from railguard.errors import CheckFailed, ConfigError, ExitCode, RailguardError, VerifyFailed
from railguard.notify.watch import JobWatch
from railguard.progress import Progress, finish, stage_counter

log = logging.getLogger("railguard.drill")

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
    name: str  # fetch | verify | start | health | metrics | assertions | stop
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail}


@dataclass
class DrillReport:
    app: str
    backup: str
    source: str  # "local" or "destination NAME"
    mode: str  # command | docker
    started_at: datetime
    result: str = "failed"  # passed | failed | interrupted
    failed_step: str | None = None
    reason: str | None = None
    hint: str | None = None
    exit_code: ExitCode = ExitCode.CHECK_FAILED
    steps: list[Step] = field(default_factory=list)
    #: The last lines the app printed (stdout and stderr), kept when the drill failed.
    output_tail: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    port: int | None = None
    app_pid: int | None = None
    seconds: float = 0.0
    #: Heartbeat pings and notifications sent about this drill.
    signals: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.result == "passed"

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.passed, "app": self.app, "backup": self.backup, "source": self.source, "mode": self.mode,
                "started_at": self.started_at, "result": self.result, "failed_step": self.failed_step,
                "reason": self.reason, "hint": self.hint, "exit_code": int(self.exit_code),
                "seconds": round(self.seconds, 3), "port": self.port, "app_pid": self.app_pid,
                "steps": [step.as_dict() for step in self.steps], "warnings": self.warnings,
                "output_tail": self.output_tail, **self.signals}


def free_port() -> int:
    """A port nobody listens on right now (the app binds it a moment later; a race with
    another process shows up as the app failing to bind, or as a wrong app_started_at)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]  # the socket module types an address as Any
        return port


def run_drill(settings: Settings, app_name: str, app: AppSettings, *, now: datetime, which: str | None = None,
              source: str | None = None, identity_file: Path | None = None, rng: random.Random | None = None,
              env: Mapping[str, str] = os.environ, docker: str = "docker",
              on_started: Callable[[DrillReport], None] | None = None,
              refresh_metrics: Callable[[Settings], None] | None = None,
              progress: Progress | None = None) -> DrillReport:
    """Drill one backup of ``app``: ``which`` is a name, ``latest`` or ``random`` (default: the
    config's ``drill.backup``); ``source`` names a destination to fetch it from instead of the
    local backup directory. ``on_started`` is called once the app's process is running;
    ``refresh_metrics`` (``railguard.metrics.refresh_textfile``, as ``railguard drill`` passes it)
    after the drill is recorded: the metrics read drill.log, so the drill does not import them.
    ``progress`` gets ``download`` (from a destination), the verification's stages, then
    ``health``: the milliseconds waited for the app, out of ``start_timeout``."""
    drill = app.drill
    which = which or drill.backup
    rng = rng or random.Random()
    # Configuration problems (nothing to start, a command naming production) are refused before
    # anything runs, so they are errors to fix rather than failed drills in drill.log.
    plan_launch(drill, app_name=app_name, copy=Path(tempfile.gettempdir()) / "railguard-drill" / "data" /
                app.database.name, port=1, production_db=app.database, environ=env, docker=docker)
    chosen = _choose(app, which, source, rng, env, owner=Owner.of(settings, app_name, app))
    report = DrillReport(app_name, chosen.name, f"destination {source}" if source else "local",
                         "docker" if drill.image else "command", now.astimezone(timezone.utc))
    started = time.monotonic()
    workspace = _make_workspace(drill, app.database, app_name)
    # From here on, a railguard killed by SIGKILL leaves nothing behind: the watchdog removes the
    # directory (and kills the app and its container once they exist).
    watchdog = process.Watchdog(docker=docker)
    watchdog.watch_workspace(workspace)
    watch = JobWatch(settings, app_name, app, "drill", now=now, env=env, refresh_metrics=refresh_metrics)
    watch.start()
    steps = _Drill(app_name, app, report, workspace, watchdog, env, docker, on_started, progress)
    try:
        steps.run(chosen, identity_file)
        report.result, report.exit_code = "passed", ExitCode.OK
    except RailguardError as exc:
        report.result, report.exit_code = "failed", exc.exit_code
        report.reason, report.hint = exc.message, exc.hint
    except KeyboardInterrupt:
        report.result, report.exit_code = "interrupted", ExitCode.INTERRUPTED
        report.reason = "interrupted"
        raise
    except Exception as exc:  # a bug or an unexpected OSError: still recorded, then shown as an error
        report.result, report.exit_code = "failed", ExitCode.ERROR
        report.reason = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.failed_step = next((step.name for step in report.steps if not step.ok), None)
        with contextlib.suppress(OSError):
            if report.failed_step is not None or not report.passed:
                report.output_tail = _tail(workspace / OUTPUT_NAME, drill.output_tail_lines)
        if steps.app_running:
            watchdog.trigger()  # the stop itself was cut short (a second Ctrl-C): the watchdog finishes it
        else:
            shutil.rmtree(workspace, onerror=lambda *args: report.warnings.append(
                f"cannot remove {args[1]}: {args[2][1]}"))
            watchdog.release()
        report.seconds = time.monotonic() - started
        _record(app.backup.directory, report)
        _signal(settings, app_name, report, watch, now, env)
    return report


# -- choosing the backup ------------------------------------------------------------------


@dataclass
class _Chosen:
    name: str
    local: BackupRecord | GenerationRecord | None = None
    remote: Any = None  # destinations.RemoteBackup
    destination: Any = None  # destinations.Destination


def _choose(app: AppSettings, which: str, source: str | None, rng: random.Random,
            env: Mapping[str, str] | None = None, *, owner: Owner | None = None) -> _Chosen:
    """``owner``: choose among that app's backups by manifest (default: by the file stem)."""
    stem = stem_for(app.database)
    if source is None:
        mine: Owner | str = owner or stem
        # Page generations (docs/pages.md) are drilled like whole-file backups: rebuilt, checked, served.
        generations = list_generations(app.backup.directory, mine)
        record: BackupRecord | GenerationRecord
        everything: list[BackupRecord | GenerationRecord] = [*list_backups(app.backup.directory, mine), *generations]
        if which == "random":
            record = choose_random(everything, rng, str(app.backup.directory))
        elif which == "latest" and any(generation.is_good for generation in generations):
            good = [candidate for candidate in everything if candidate.is_good]
            record = max(good, key=lambda candidate: (candidate.created_at, candidate.id))
        elif any(generation.name == which for generation in generations):
            record = resolve_generation(app.backup.directory, mine, which)
        else:
            record = resolve_backup(app.backup.directory, mine, which)
        return _Chosen(record.name, local=record)
    from railguard.destinations import open_destination

    destination = open_destination(app, source, env)
    if which == "random":
        remote = choose_random(destination.list_backups(stem), rng, f"destination {source}")
    else:
        remote = destination.stat_backup(which, stem)
    return _Chosen(remote.name, remote=remote, destination=destination)


# -- the workspace ------------------------------------------------------------------------


def _make_workspace(drill: DrillSettings, production_db: Path, app_name: str) -> Path:
    """A fresh private directory with nothing in common with the production data directory."""
    parent = Path(drill.scratch_dir or tempfile.gettempdir()).resolve()
    production_dir = production_db.resolve().parent
    if parent == production_dir or production_dir in parent.parents:
        raise DrillWorkspaceError(f"drill scratch_dir {parent} is inside the production data directory "
                                  f"{production_dir}", hint="Point [drill] scratch_dir somewhere else (or unset it)")
    try:
        return Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{app_name}-", dir=parent))
    except OSError as exc:
        raise DrillWorkspaceError(f"cannot create the drill directory in {parent}: {exc.strerror or exc}",
                                  hint="Set [drill] scratch_dir to a writable directory with room for the "
                                       "database") from exc


def _tail(path: Path, lines: int) -> list[str]:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return text.splitlines()[-lines:]


# -- the steps ----------------------------------------------------------------------------


class _Drill:
    def __init__(self, app_name: str, app: AppSettings, report: DrillReport, workspace: Path,
                 watchdog: process.Watchdog, env: Mapping[str, str], docker: str,
                 on_started: Callable[[DrillReport], None] | None, progress: Progress | None = None) -> None:
        self.app_name = app_name
        self.app = app
        self.drill = app.drill
        self.report = report
        self.workspace = workspace
        self.watchdog = watchdog
        self.env = env
        self.docker = docker
        self.on_started = on_started
        self.progress = progress
        #: True from the spawn until the process group is known to be stopped.
        self.app_running = False
        #: Epoch ms just before the spawn: the app's app_started_at cannot be earlier.
        self.started_wall_ms = 0.0

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        entry = Step(name)
        self.report.steps.append(entry)
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

    def run(self, chosen: _Chosen, identity_file: Path | None) -> None:
        with contextlib.ExitStack() as stack:
            record = chosen.local
            if record is None:
                with self.step("fetch") as step:
                    record = self._fetch(chosen, identity_file)
                    step.detail = f"{record.data_path.name if record.data_path else record.name} from " \
                                  f"{chosen.destination.url}"
            copy = self._verify(stack, record)
            self._serve(copy)

    def _fetch(self, chosen: _Chosen, identity_file: Path | None) -> BackupRecord:
        """Download (and decrypt) the copy into the drill's directory, as a local backup: the
        destination checks the stored bytes' sha256 on the way (and marks a damaged copy so),
        :meth:`_verify` the rest."""
        from railguard.destinations import fetch_backup

        fetch_dir = self.workspace / "fetch"
        fetch_dir.mkdir()
        return fetch_backup(chosen.destination, chosen.remote, fetch_dir, now=self.report.started_at,
                            identity_file=identity_file, progress=self.progress)

    def _verify(self, stack: contextlib.ExitStack, record: BackupRecord | GenerationRecord) -> Path:
        with self.step("verify") as step:
            verified: VerifiedCopy | RebuiltGeneration
            if isinstance(record, GenerationRecord):
                if record.manifest is None or not record.is_good:
                    raise VerifyFailed(f"generation {record.name} is {record.reason}",
                                       hint="It cannot be trusted; drill another backup")
                verified = stack.enter_context(rebuild_generation(record.store, record.manifest, self.workspace,
                                                                  mode="integrity", progress=self.progress))
                done = f"page hashes ok, rebuilt {record.manifest.size_raw} bytes"
            else:
                verified = stack.enter_context(materialize(record, self.workspace, mode="integrity",
                                                           progress=self.progress))
                assert record.manifest is not None
                done = f"sha256 ok, decompressed {record.manifest.size_raw} bytes"
            data_dir = self.workspace / "data"
            data_dir.mkdir()
            copy = data_dir / self.app.database.name
            os.rename(verified.path, copy)
            step.detail = (f"{done}, integrity_check ok, "
                           f"foreign_key_check {verified.check.foreign_key_problems} problem(s)")
            if verified.check.foreign_key_problems:
                self.report.warnings.append(
                    f"foreign_key_check found {verified.check.foreign_key_problems} problem(s) in the copy "
                    "(the app may run with foreign keys off; the drill goes on)")
        return copy

    def _serve(self, copy: Path) -> None:
        port = free_port()
        self.report.port = port
        plan = plan_launch(self.drill, app_name=self.app_name, copy=copy, port=port,
                           production_db=self.app.database, environ=self.env, docker=self.docker)
        with self.running(plan) as app_process:
            self._check_health(plan, port, app_process)
            self._check_metrics(port)
            if self.drill.assertions:
                with self.step("assertions") as step:
                    results = run_assertions(copy, self.drill.assertions, now=datetime.now(timezone.utc))
                    failed = [result for result in results if not result.ok]
                    step.detail = "; ".join(f"{r.sql}: {r.detail}" for r in results)
                    if failed:
                        raise DrillStepFailed(
                            f"assertion failed: {failed[0].sql}: {failed[0].detail}",
                            hint="The backup holds an empty or stale database: check the backup job and the app")

    @contextlib.contextmanager
    def running(self, plan: LaunchPlan) -> Iterator[subprocess.Popen[bytes]]:
        grace = self.drill.stop_grace.total_seconds()
        watchdog = self.watchdog
        app_process: subprocess.Popen[bytes] | None = None
        try:
            with self.step("start") as step:
                if plan.container:
                    watchdog.watch_container(plan.container)
                with (self.workspace / OUTPUT_NAME).open("ab") as output:
                    try:
                        app_process = process.spawn(plan.argv, env=plan.env, cwd=plan.cwd, output=output)
                        self.app_running = True
                    except OSError as exc:
                        raise DrillStepFailed(f"cannot start the app: {plan.argv[0]}: {exc.strerror or exc}",
                                              hint="Check [drill] command (or that docker is installed)") from exc
                watchdog.watch_group(app_process.pid, grace)
                self.started_wall_ms = (time.time() - 1.0) * 1000  # 1 s: the app's clock reads ms, ours may round
                self.report.app_pid = app_process.pid
                what = f"image {self.drill.image}" if plan.container else " ".join(plan.argv[:3])
                step.detail = f"pid {app_process.pid}, port {self.report.port}, {what}"
            if self.on_started is not None:
                self.on_started(self.report)
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
                    hint="Its output is in the report: the app cannot boot on this backup")
            if not waited.ok:
                raise DrillStepFailed(
                    f"{path} did not answer 200 within {timeout:g}s (last answer: {waited.last.describe()})",
                    hint="The app cannot serve this backup: see its output in the report "
                         "(or raise [drill] start_timeout if it is only slow)")
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
                raise DrillStepFailed(verdict.detail, hint="The app started but is not healthy on this backup")


def _waiting(progress: Progress | None, total: int) -> Callable[[float], None] | None:
    """The ``health`` stage's count from the seconds waited (never past the timeout)."""
    if progress is None:
        return None
    return lambda seconds: progress("health", min(round(seconds * 1000), total), total)


# -- the record and the signals -----------------------------------------------------------


def _record(directory: Path, report: DrillReport) -> None:
    """One logfmt line in drill.log next to the backups (what ``railguard status`` reads)."""
    fields: dict[str, Any] = {
        "time": report.started_at, "app": report.app, "backup": report.backup, "source": report.source,
        # backup.log's vocabulary (result=ok|failed), which read_drill_log's callers rely on.
        "mode": report.mode, "result": PASSED if report.passed else report.result, "step": report.failed_step,
        "error": report.reason,
        "port": report.port,
    }
    fields.update({f"{step.name}_s": round(step.seconds, 3) for step in report.steps})
    fields["total_s"] = round(report.seconds, 3)
    if report.output_tail and not report.passed:
        fields["output"] = "\n".join(report.output_tail)
    try:
        append_drill_line(directory, fields)
    except OSError as exc:
        report.warnings.append(f"cannot append to {directory / LOG_NAME}: {exc.strerror or exc}")


def _signal(settings: Settings, app_name: str, report: DrillReport, watch: Any, now: datetime,
            env: Mapping[str, str]) -> None:
    """Heartbeat, metrics textfile and notifications; none of them can change the drill's result."""
    try:
        if report.passed:
            report.signals.update(watch.succeeded(int(report.exit_code), _summary(report)))
            from railguard.notify.notifier import notifier_for

            delivery = notifier_for(settings, env=env).notify(
                "drill_passed", f"{app_name} drill passed",
                f"{app_name}: backup {report.backup} restored and booted the app ({report.seconds:.1f}s)", now=now)
            report.signals["notifications"] = [delivery.as_dict()]
        elif report.result == "interrupted":
            watch.failed(KeyboardInterrupt())
            report.signals.update(watch.summary())
        else:
            failure = RailguardError(_summary(report), hint=report.hint)
            failure.exit_code = report.exit_code
            watch.failed(failure)
            report.signals.update(watch.summary())
    except Exception as exc:  # noqa: BLE001 (a signal problem must never change the drill's result)
        log.warning("drill heartbeat/notification failed: %s", exc)
        report.warnings.append(f"heartbeat/notification failed: {exc}")


def _summary(report: DrillReport) -> str:
    head = (f"drill of {report.backup} ({report.source}) {report.result}"
            + (f" at {report.failed_step}: {report.reason}" if report.failed_step else ""))
    return "\n".join([head, *(f"{s.name}: {'ok' if s.ok else 'FAILED'} {s.seconds:.1f}s {s.detail}"
                              for s in report.steps), *report.output_tail])
