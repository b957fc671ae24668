"""The daemon's loop: start jobs when due, never two runs of the same job at once, supervise
services, and stop cleanly on SIGTERM.

The clock and the sleep are parameters so tests can run second-level schedules; the loop
itself holds no policy beyond "due and not running → start".

Starting a job can fail without the job being at fault: no descriptor left for its output file
(EMFILE), no memory to fork, a missing executable. The loop must outlive that, so a start that
raises is logged and recorded as a failed run, and the job stays due: it is tried again at the
next tick until it starts. One failed run stands for a whole streak of failed attempts (its
summary counts them), so a minute of EMFILE does not push the job's real history out of the
bounded run log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from railguard.daemon.jobs import Job, Outcome
from railguard.daemon.runlog import RunLog
from railguard.errors import ExitCode
from railguard.logfmt import format_line, timestamp
from railguard.schedule import is_due_at_start

Clock = Callable[[], datetime]
TICK_SECONDS = 0.2
#: Service restarts back off up to this long, so a crashing monitor does not spin.
MAX_RESTART_DELAY = 60.0
TAIL_BYTES = 2000
#: A job's report (a backup's --json document, a few KiB) is read from at most this much output.
REPORT_BYTES = 1 << 20


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    run_id: int
    started: datetime
    output: IO[bytes]
    terminated_at: float | None = None


@dataclass
class _StartFailures:
    """A streak of failed attempts to start a job, recorded as one failed run."""

    run_id: int
    attempts: int = 1


@dataclass
class _JobState:
    job: Job
    next_due: datetime | None = None
    running: _Running | None = None
    restart_delay: float = 1.0
    start_failures: _StartFailures | None = None


@dataclass
class Daemon:
    jobs: list[Job]
    runlog: RunLog
    tz: str = "UTC"
    stop_grace: timedelta = timedelta(minutes=2)
    job_timeout: timedelta = timedelta(hours=6)
    clock: Clock = _utc_now
    log: Callable[[str], None] = print
    #: When a job last succeeded (the catch-up rule reads it); default: the run log's record.
    last_success: Callable[[Job], datetime | None] | None = None
    #: Starts a job's process (``subprocess.Popen``'s signature); a seam for the failure tests.
    spawn: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen
    stop_event: threading.Event = field(default_factory=threading.Event)
    #: Monotonic time of the last loop pass: /healthz reports the loop stuck when it gets old.
    last_tick: float = field(default_factory=time.monotonic)
    _states: dict[str, _JobState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._states = {job.name: _JobState(job) for job in self.jobs}

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        now = self.clock()
        for state in self._states.values():
            self._plan_first_run(state, now)
        try:
            while not self.stop_event.is_set():
                self.last_tick = time.monotonic()
                now = self.clock()
                for state in self._states.values():
                    self._reap(state, now)
                    self._enforce_timeout(state)
                    if state.next_due is not None and now >= state.next_due:
                        self._start_or_skip(state, now)
                self.stop_event.wait(TICK_SECONDS)
        finally:
            self._stop_all()
        return ExitCode.OK

    def stop(self) -> None:
        self.stop_event.set()

    # -- scheduling ---------------------------------------------------------------------------
    def _plan_first_run(self, state: _JobState, now: datetime) -> None:
        job, schedule = state.job, state.job.schedule
        if schedule is None:  # a service (Job.is_service)
            state.next_due = now
            return
        last = self.last_success(job) if self.last_success else self.runlog.last_success(job.name)
        if is_due_at_start(schedule, last, now, self.tz):
            state.next_due = now
            self._line(job.name, "catch-up", reason="never succeeded" if last is None else
                       f"missed the run due at {schedule.previous_at_or_before(now, self.tz).isoformat()}")
        else:
            state.next_due = schedule.next_after(now, self.tz)

    def _start_or_skip(self, state: _JobState, now: datetime) -> None:
        job = state.job
        if state.running is not None:
            # Never two runs of the same job: this occurrence is skipped, and said so.
            self.runlog.skipped(job.name, now, "the previous run is still going")
            self._line(job.name, "skipped", reason="the previous run is still going")
        elif not self._start(state, now):
            return  # still due: tried again at the next tick
        if job.schedule is not None:  # not a service
            state.next_due = job.schedule.next_after(now, self.tz)
        else:
            state.next_due = None

    def _start(self, state: _JobState, now: datetime) -> bool:
        """Start the job's process; False (logged, recorded) when it could not be started."""
        output = None
        try:
            output = tempfile.TemporaryFile()
            # Its own session: a Ctrl-C in the daemon's terminal must not reach the job twice; the
            # daemon forwards SIGTERM itself and gives the job time to clean up.
            process = self.spawn(state.job.argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                 start_new_session=True)
        except Exception as exc:  # EMFILE, ENOMEM, ENOENT, ...: whatever it is, the daemon goes on
            if output is not None:
                output.close()
            self._start_failed(state, now, exc)
            return False
        if state.start_failures is not None:
            self._line(state.job.name, "started", after_failed_attempts=state.start_failures.attempts)
            state.start_failures = None
        run_id = self.runlog.start(state.job.name, now)
        state.running = _Running(process, run_id, now, output)
        return True

    def _start_failed(self, state: _JobState, now: datetime, exc: Exception) -> None:
        reason = f"could not start: {exc}"
        failures = state.start_failures
        try:
            if failures is None:
                self._line(state.job.name, "failed", reason=reason, retry="at the next tick")
                run_id = self.runlog.start(state.job.name, now)
                self.runlog.finish(run_id, now, None, "failed", reason)
                state.start_failures = _StartFailures(run_id)
            else:
                failures.attempts += 1
                self.runlog.finish(failures.run_id, now, None, "failed", f"{reason} ({failures.attempts} attempts)")
        except sqlite3.Error as record_error:  # the same shortage can stop SQLite: the log line stays
            self._line(state.job.name, "failed", reason=reason, not_recorded=str(record_error))

    def _reap(self, state: _JobState, now: datetime) -> None:
        running = state.running
        if running is None or running.process.poll() is None:
            return
        code = running.process.returncode
        said = _what_the_run_said(state.job, running.output)
        if running.terminated_at is not None:
            result = "killed"
        else:
            result = "ok" if code == ExitCode.OK else "warning" if code == ExitCode.WARNING else "failed"
        self.runlog.finish(running.run_id, now, code, result, said.summary)
        self._line(state.job.name, result, exit_code=code,
                   duration_s=round((now - running.started).total_seconds(), 3), **said.line_fields())
        state.running = None
        if state.job.is_service and not self.stop_event.is_set():
            # A service that exits is restarted, later each time it keeps failing.
            state.next_due = now + timedelta(seconds=state.restart_delay)
            state.restart_delay = min(state.restart_delay * 2, MAX_RESTART_DELAY)

    def _enforce_timeout(self, state: _JobState) -> None:
        running = state.running
        if running is None or state.job.is_service:
            return
        if running.terminated_at is None and self.clock() - running.started > self.job_timeout:
            self._line(state.job.name, "timeout", after_s=self.job_timeout.total_seconds())
            self._signal(running, signal.SIGTERM)
            running.terminated_at = time.monotonic()
        elif running.terminated_at is not None and time.monotonic() - running.terminated_at > \
                self.stop_grace.total_seconds():
            self._signal(running, signal.SIGKILL)

    # -- stopping -----------------------------------------------------------------------------
    def _stop_all(self) -> None:
        running = [(s, s.running) for s in self._states.values() if s.running is not None]
        for _, job_run in running:
            self._signal(job_run, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace.total_seconds()
        for state, job_run in running:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                job_run.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                self._line(state.job.name, "killed", reason="did not stop within stop_grace")
                self._signal(job_run, signal.SIGKILL)
                job_run.process.wait()
            job_run.terminated_at = job_run.terminated_at or time.monotonic()
            # Report how the job ended; "killed" only if we had to.
            self._reap_stopped(state, job_run)

    def _reap_stopped(self, state: _JobState, running: _Running) -> None:
        code = running.process.returncode
        said = _what_the_run_said(state.job, running.output)
        result = "interrupted" if code == ExitCode.INTERRUPTED else "killed" if code and code < 0 else \
            {0: "ok", 1: "warning"}.get(code, "failed")
        self.runlog.finish(running.run_id, self.clock(), code, result, said.summary)
        self._line(state.job.name, result, exit_code=code, **said.line_fields())
        state.running = None

    @staticmethod
    def _signal(running: _Running, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.process.pid, signum)

    # -- what the outside sees ----------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Per job: schedule, next due, running, last success (for /healthz, /metrics, status)."""
        out = []
        for state in self._states.values():
            out.append({
                "job": state.job.name,
                "schedule": str(state.job.schedule) if state.job.schedule else "service",
                "next_run": state.next_due,
                "running": state.running is not None,
                "last_success": self.runlog.last_success(state.job.name),
            })
        return out

    def _line(self, job: str, event: str, **fields: object) -> None:
        self.log(format_line({"time": timestamp(self.clock()), "job": job, "event": event,
                              **fields}))


@dataclass(frozen=True)
class _Said:
    """What a finished run's output says: its report, or else its last line."""

    summary: str
    report: Outcome | None

    def line_fields(self) -> dict[str, str]:
        if self.report is None:
            return {"last_line": self.summary}
        return {**self.report.fields, "summary": self.summary}


def _what_the_run_said(job: Job, output: IO[bytes]) -> _Said:
    """Read (and close) a finished run's output: the job's report when it has one, else the last line."""
    try:
        tail = _tail(output, TAIL_BYTES)
        report = job.read_report(_tail(output, REPORT_BYTES)) if job.read_report else None
    finally:
        output.close()
    if report is not None:
        return _Said(report.summary, report)
    return _Said(tail.strip().splitlines()[-1] if tail.strip() else "", None)


def _tail(output: IO[bytes], size: int) -> str:
    output.seek(0, os.SEEK_END)
    end = output.tell()
    output.seek(max(0, end - size))
    return output.read().decode("utf-8", "replace")
