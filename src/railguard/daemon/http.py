"""The daemon's own ``/healthz`` and ``/metrics``, on the standard library's HTTP server.

``/healthz`` answers 200 while the scheduling loop is turning and 503 when it has been stuck
for longer than a few ticks. ``/metrics`` follows Prometheus conventions: timestamps as
``*_timestamp_seconds``, gauges per job with a ``job`` label.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from railguard import __version__
from railguard.daemon.runner import Daemon

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
    for (job, result), count in sorted(counts.items()):
        lines.append(f'railguard_job_runs_total{{job="{job}",result="{result}"}} {count}')
    return "\n".join(lines) + "\n"


def serve(daemon: Daemon, host: str, port: int, extra_metrics: Callable[[], bytes] | None = None) -> ThreadingHTTPServer:
    """Start the endpoints on a background thread; the caller shuts the server down.

    ``extra_metrics`` adds railguard's own families (last backup, destinations, drill, monitor)
    after the daemon's, so one scrape of the daemon sees everything.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            if self.path == "/healthz":
                stuck = time.monotonic() - daemon.last_tick > STUCK_AFTER_SECONDS
                body = json.dumps({"ok": not stuck, "jobs": daemon.snapshot()}, default=str).encode()
                self._send(503 if stuck else 200, "application/json", body)
            elif self.path == "/metrics":
                body = render_metrics(daemon).encode()
                if extra_metrics is not None:
                    body += extra_metrics()
                self._send(200, "text/plain; version=0.0.4", body)
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # one line per job run, not per scrape
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="railguard-daemon-http", daemon=True).start()
    return server
