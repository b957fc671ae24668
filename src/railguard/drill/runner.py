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
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from railguard.backup.catalog import BackupRecord, Owner, list_backups, resolve_backup
from railguard.backup.naming import stem_for
from railguard.pages.catalog import GenerationRecord, list_generations, resolve_generation
from railguard.pages.copies import checked_copy, newest_good
from railguard.config import AppSettings, Settings
from railguard.drill import process
from railguard.drill.boot import OUTPUT_NAME, AppBoot, BootReport, Step, make_workspace, tail, timed_step
from railguard.drill.launch import plan_launch
from railguard.drill.log import LOG_NAME, PASSED, append_drill_line
from railguard.drill.selection import choose_random
from railguard.errors import ExitCode, RailguardError
from railguard.notify.watch import JobWatch
from railguard.progress import Progress

log = logging.getLogger("railguard.drill")



@dataclass
class DrillReport(BootReport):
    app: str
    backup: str
    source: str  # "local" or "destination NAME"
    mode: str  # command | docker
    started_at: datetime
    #: Heartbeat pings and notifications sent about this drill.
    signals: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.passed, "app": self.app, "backup": self.backup, "source": self.source, "mode": self.mode,
                "started_at": self.started_at, "result": self.result, "failed_step": self.failed_step,
                "reason": self.reason, "hint": self.hint, "exit_code": int(self.exit_code),
                "seconds": round(self.seconds, 3), "port": self.port, "app_pid": self.app_pid,
                "steps": [step.as_dict() for step in self.steps], "warnings": self.warnings,
                "output_tail": self.output_tail, **self.signals}


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
    workspace = make_workspace(drill, app.database, app_name)
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
                report.output_tail = tail(workspace / OUTPUT_NAME, drill.output_tail_lines)
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
            newest = newest_good(everything)
            assert newest is not None  # a good generation is among them
            record = newest
        elif any(generation.name == which for generation in generations):
            record = resolve_generation(app.backup.directory, mine, which)
        else:
            record = resolve_backup(app.backup.directory, mine, which)
        return _Chosen(record.name, local=record)
    from railguard.destinations import open_destination

    from railguard.destinations.remote import choose_remote

    destination = open_destination(app, source, env)
    # Whole-file copies and page generations there alike (docs/pages.md).
    chooser = (lambda copies: choose_random(copies, rng, f"destination {source}")) if which == "random" else None
    remote = choose_remote(destination, stem, which, chooser)
    return _Chosen(remote.name, remote=remote, destination=destination)


# -- the workspace ------------------------------------------------------------------------


# -- the steps ----------------------------------------------------------------------------


class _Drill:
    """Fetch and verify the copy, then boot the app on it (:class:`~railguard.drill.boot.AppBoot`)."""

    def __init__(self, app_name: str, app: AppSettings, report: DrillReport, workspace: Path,
                 watchdog: process.Watchdog, env: Mapping[str, str], docker: str,
                 on_started: Callable[[DrillReport], None] | None, progress: Progress | None = None) -> None:
        self.app = app
        self.report = report
        self.workspace = workspace
        self.progress = progress
        self.boot = AppBoot(app_name, app.drill, production_db=app.database, record=report, workspace=workspace,
                            watchdog=watchdog, env=env, docker=docker, progress=progress,
                            on_started=None if on_started is None else lambda: on_started(report))

    @property
    def app_running(self) -> bool:
        return self.boot.app_running

    def step(self, name: str) -> contextlib.AbstractContextManager[Step]:
        return timed_step(self.report, name)

    def run(self, chosen: _Chosen, identity_file: Path | None) -> None:
        with contextlib.ExitStack() as stack:
            record = chosen.local
            if record is None:
                with self.step("fetch") as step:
                    record = self._fetch(chosen, identity_file)
                    data_path = getattr(record, "data_path", None)
                    step.detail = f"{data_path.name if data_path else record.name} from {chosen.destination.url}"
            copy = self._verify(stack, record)
            self.boot.serve(copy, assertion_hint="The backup holds an empty or stale database: check the backup "
                                                 "job and the app")

    def _fetch(self, chosen: _Chosen, identity_file: Path | None) -> BackupRecord | GenerationRecord:
        """Download (and decrypt) the copy into the drill's directory, as a local backup or
        generation: the destination checks the stored bytes' sha256 on the way (and marks a
        damaged whole-file copy so), :meth:`_verify` the rest."""
        from railguard.destinations.remote import fetch_copy

        fetch_dir = self.workspace / "fetch"
        fetch_dir.mkdir(mode=0o700)
        return fetch_copy(chosen.destination, stem_for(self.app.database), chosen.remote, fetch_dir,
                          now=self.report.started_at, identity_file=identity_file, progress=self.progress)

    def _verify(self, stack: contextlib.ExitStack, record: BackupRecord | GenerationRecord) -> Path:
        with self.step("verify") as step:
            verified = stack.enter_context(checked_copy(record, self.workspace, mode="integrity", progress=self.progress,
                                                        hint="It cannot be trusted; drill another backup"))
            data_dir = self.workspace / "data"
            data_dir.mkdir()
            copy = data_dir / self.app.database.name
            os.rename(verified.path, copy)
            step.detail = (f"{verified.proven}, integrity_check ok, "
                           f"foreign_key_check {verified.check.foreign_key_problems} problem(s)")
            if verified.check.foreign_key_problems:
                self.report.warnings.append(
                    f"foreign_key_check found {verified.check.foreign_key_problems} problem(s) in the copy "
                    "(the app may run with foreign keys off; the drill goes on)")
        return copy


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
