"""The daemon's web app: ``/healthz`` and ``/metrics`` on Starlette, served by uvicorn on a thread.

=================  ========================================================================
``GET /``          the status page (:mod:`railguard.web`), its app pages and ``/api/`` routes,
                   joined by ``railguard daemon`` and behind the status page's token
``GET /healthz``   200 while the scheduling loop is turning, 503 when it has been stuck for
                   longer than a few ticks; JSON with every job's schedule and state
``GET /metrics``   Prometheus text: the daemon's own families, then railguard's (last backup,
                   destinations, drill, monitor), so one scrape of the daemon sees everything
=================  ========================================================================

One Starlette app with a route table (:func:`create_app`; pages and ``/api/`` routes join the
table, passed in by the command), one uvicorn server with the same protocol, timeouts and connection limit as the gate
(:mod:`railguard.webserver`), on a thread of its own: the job loop keeps the main thread and
its SIGTERM handling. The server starts before the first job and stops after the last one.
The handlers read the run log and the backup directories, so they run in the thread pool,
never on the event loop that accepts and times out connections.

``/metrics`` follows Prometheus conventions: timestamps as ``*_timestamp_seconds``, gauges per
job with a ``job`` label.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from railguard import __version__
from railguard.daemon.runner import Daemon
from railguard.webserver import BackgroundServer, ConnectionLimits

STUCK_AFTER_SECONDS = 30.0


def render_metrics(daemon: Daemon) -> str:
    lines = [
        "# HELP railguard_daemon_build_info railguard version running the daemon.",
        "# TYPE railguard_daemon_build_info gauge",
        f'railguard_daemon_build_info{{version="{__version__}"}} 1',
        "# HELP railguard_job_running 1 while a run of the job is in progress.",
        "# TYPE railguard_job_running gauge",
    ]
    snapshot = daemon.snapshot()
    for job in snapshot:
        lines.append(f'railguard_job_running{{job="{job["job"]}"}} {int(job["running"])}')
    lines += ["# HELP railguard_job_last_success_timestamp_seconds Start of the job's last successful run.",
              "# TYPE railguard_job_last_success_timestamp_seconds gauge"]
    for job in snapshot:
        if job["last_success"] is not None:
            lines.append(f'railguard_job_last_success_timestamp_seconds{{job="{job["job"]}"}} '
                         f'{job["last_success"].timestamp():.3f}')
    lines += ["# HELP railguard_job_next_run_timestamp_seconds When the job runs next.",
              "# TYPE railguard_job_next_run_timestamp_seconds gauge"]
    for job in snapshot:
        if job["next_run"] is not None:
            lines.append(f'railguard_job_next_run_timestamp_seconds{{job="{job["job"]}"}} '
                         f'{job["next_run"].timestamp():.3f}')
    counts: dict[tuple[str, str], int] = {}
    for run in daemon.runlog.runs():
        counts[(run.job, run.result)] = counts.get((run.job, run.result), 0) + 1
    lines += ["# HELP railguard_job_runs_total Runs recorded per job and result (bounded history).",
              "# TYPE railguard_job_runs_total counter"]
    for (name, result), count in sorted(counts.items()):
        lines.append(f'railguard_job_runs_total{{job="{name}",result="{result}"}} {count}')
    return "\n".join(lines) + "\n"


def create_app(daemon: Daemon, extra_metrics: Callable[[], bytes] | None = None,
               routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The daemon's routes. ``extra_metrics`` adds railguard's own families after the daemon's;
    ``routes`` join the table after ``/healthz`` and ``/metrics`` (the status page's,
    :func:`railguard.web.app.web_routes`, which guard themselves)."""

    def health() -> tuple[int, bytes]:
        stuck = time.monotonic() - daemon.last_tick > STUCK_AFTER_SECONDS
        return 503 if stuck else 200, json.dumps({"ok": not stuck, "jobs": daemon.snapshot()}, default=str).encode()

    def exposition() -> bytes:
        body = render_metrics(daemon).encode()
        return body + extra_metrics() if extra_metrics is not None else body

    async def healthz(request: Request) -> Response:
        status, body = await run_in_threadpool(health)
        return Response(body, status_code=status, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(await run_in_threadpool(exposition), media_type="text/plain; version=0.0.4")

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *routes,
    ])


def serve(daemon: Daemon, host: str, port: int, extra_metrics: Callable[[], bytes] | None = None,
          limits: ConnectionLimits = ConnectionLimits(), routes: Sequence[BaseRoute] = ()) -> BackgroundServer:
    """Start the endpoints on a background thread; the caller stops the server (``.stop()``).
    A port that cannot be bound raises ``OSError`` here."""
    return BackgroundServer(create_app(daemon, extra_metrics, routes), host=host, port=port, limits=limits,
                            name="railguard-daemon-http").start()
