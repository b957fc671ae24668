"""``railguard daemon`` and ``railguard schedule``."""

from __future__ import annotations

import signal
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from railguard.cli import output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.daemon import Daemon, RunLog, plan_jobs
from railguard.daemon.jobs import jobs_not_run, last_success, planned_runs, runlog_path
from railguard.errors import ExitCode, UsageError
from railguard.logfmt import parse_line
from railguard.metrics.exposition import metrics_endpoint
from railguard.values import Listen

pass_context = click.make_pass_decorator(Context)


@cli.command()
@output.json_option
@pass_context
def daemon(ctx: Context, as_json: bool) -> int:
    """Run every enabled job on its schedule, in one long-running process.

    Backups (followed by prune and the copies off the host), the monthly drill, the monitor and
    the webhook gate, as the configuration enables them. A job whose last success is older than
    its previous scheduled run starts at once (catch-up after downtime). SIGTERM lets a running
    job finish or abort cleanly. Logs one logfmt line per job event on stdout; with --json, the
    same fields as one JSON document per line.
    """
    settings = ctx.settings()
    jobs = plan_jobs(settings)
    if not jobs:
        raise UsageError("nothing to run: every job is switched off in the configuration",
                         hint="Set [apps.NAME.schedule] backup, or enable [daemon] monitor or gate")
    runlog = RunLog(runlog_path(settings))
    runner = Daemon(jobs, runlog, tz=settings.timezone, stop_grace=settings.daemon.stop_grace,
                    job_timeout=settings.daemon.job_timeout, log=_json_line if as_json else _text_line,
                    last_success=lambda job: last_success(job, runlog, settings))
    server = None
    if settings.daemon.listen:
        from railguard.daemon import http as daemon_http  # here: `railguard schedule` needs no web stack
        from railguard.web.app import Access, web_routes
        from railguard.web.monitor_api import monitor_api_routes

        listen = Listen.parse(settings.daemon.listen, key="daemon.listen")
        # Before the first job: a status page that would be open to the network refuses to start.
        access = Access.for_listen(listen, settings, what="daemon.listen")
        try:
            server = daemon_http.serve(runner, listen.host, listen.port,
                                       extra_metrics=lambda: metrics_endpoint(settings)[2],
                                       routes=[*web_routes(settings, access, ctx.now),
                                               *monitor_api_routes(settings, access, ctx.now)])
        except OSError as exc:
            raise UsageError(f"daemon.listen {settings.daemon.listen!r}: cannot listen there ({exc})",
                             hint="Choose a free host:port, or \"\" to turn the endpoints off") from None

    def stop(signum: int, frame: object) -> None:
        runner.stop()

    # The daemon stops by finishing its loop, not by an exception in the middle of it.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"railguard daemon: {len(jobs)} job(s): {', '.join(job.name for job in jobs)}", file=sys.stderr, flush=True)
    try:
        return runner.run()
    finally:
        if server is not None:
            server.stop()
        runlog.close()


@cli.command()
@output.json_option
@pass_context
def schedule(ctx: Context, as_json: bool) -> int:
    """Show every job the daemon runs, its schedule, its next run and its last success.

    A job it does not run (a drill without [apps.NAME.drill], an empty schedule) is listed as
    "not run", with what to set.
    """
    settings = ctx.settings()
    timings = planned_runs(settings, ctx.now())
    # The jobs the daemon does not run, and why: a drill that never runs must not go unsaid.
    not_run = [{"job": name, "why": why} for name, why in jobs_not_run(settings)]
    if as_json:
        rows = [timing.as_dict() for timing in timings]
        output.emit_json({"ok": True, "timezone": settings.timezone, "jobs": rows, "not_run": not_run})
        return ExitCode.OK
    output.table(f"jobs (times in {settings.timezone})", ["job", "schedule", "next run", "last success"], [
        [t.job, t.schedule,
         "now (catch-up: a run was missed)" if t.catch_up else _local(t.next_run, settings.timezone),
         _local(t.last_success, settings.timezone) if t.last_success else "never"] for t in timings]
        + [[item["job"], "not run", "never", item["why"]] for item in not_run])
    return ExitCode.OK


def _text_line(line: str) -> None:
    print(line, flush=True)


def _json_line(line: str) -> None:
    # The runner writes logfmt; the same fields, as strings (a commit hash or a job name is
    # never guessed into a number).
    output.emit_json_line(parse_line(line))


def _local(moment: datetime | None, tz: str) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
