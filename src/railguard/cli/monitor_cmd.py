"""``railguard monitor`` (the long-running uptime monitor), ``monitor list``, ``monitor pause``
and ``monitor resume``."""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

import click

from railguard.cli import options, output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.config import Settings
from railguard.errors import ExitCode, UsageError
from railguard.logfmt import format_line, timestamp
from railguard.monitor import Monitor, RoundReport, targets_from_settings
from railguard.monitor.pause import pause_monitoring, resume_monitoring
from railguard.monitor.report import TargetStatus, monitor_status
from railguard.monitor.runner import monitor_store
from railguard.notify.notifier import notifier_for
from railguard.values import Listen, parse_duration

pass_context = click.make_pass_decorator(Context)


@cli.group(invoke_without_command=True)
@click.option("--interval", metavar="DURATION", help="Time between rounds [monitor.interval].")
@click.option("--once", is_flag=True, help="Run one round and exit (1 when a check failed).")
@click.option("--rounds", type=click.IntRange(min=1), hidden=True, help="Stop after N rounds (benchmarks).")
@click.option("--metrics-listen", metavar="HOST:PORT",
              help="Also serve railguard's metrics at http://HOST:PORT/metrics ([IPV6]:PORT for IPv6).")
@output.json_option
@click.pass_context
def monitor(click_ctx: click.Context, interval: str | None, once: bool, rounds: int | None,
            metrics_listen: str | None, as_json: bool) -> int | None:
    """Check every target (default: each app's url + /health) every interval; alert on DOWN
    after N consecutive failures and on RECOVERED after M successes, with the outage's length.

    State survives restarts (no second DOWN for the same outage). Stop with Ctrl-C or SIGTERM.
    The log goes to stderr; -v adds one line per round. With --json, each round is one JSON
    document on a line of stdout.
    """
    if click_ctx.invoked_subcommand is not None:
        return None
    ctx = click_ctx.find_object(Context)
    assert ctx is not None, "the root command puts the Context in place"
    settings = ctx.settings({"monitor.interval": ("--interval", interval)})
    # Before anything starts: a bad address is an error, not a monitor without its metrics.
    metrics_address = Listen.parse(metrics_listen, key="--metrics-listen") if metrics_listen else None
    targets = targets_from_settings(settings)
    log = logging.getLogger("railguard.monitor")
    with output.log_to_stderr(), monitor_store(settings) as store:
        server = _serve_metrics(settings, metrics_address) if metrics_address else None

        def on_round(report: RoundReport) -> None:
            if as_json:
                output.emit_json_line(_round_document(report))
            if output.verbosity():
                log.info(format_line({"event": "round", "targets": len(report.results), "failed": report.failed,
                                      "checks_seconds": round(report.checks_seconds, 3),
                                      "seconds": round(report.seconds, 3), "alerts": len(report.alerts),
                                      "maintenance": report.maintenance}))
            if settings.metrics.textfile_directory is not None:  # prometheus_client only when asked for
                from railguard.metrics.textfile import refresh_monitor_textfile

                refresh_monitor_textfile(settings, monitor_runner.states.items())

        notifier = notifier_for(settings)
        unrouted = notifier.prepare(["monitor_down", "monitor_recovered"])
        if unrouted:
            log.warning(format_line({"event": "no_notifications", "events": ",".join(unrouted),
                                     "hint": f"set ${settings.notifications.urls_env}; alerts are only logged"}))
        # Here, not at the top: `monitor list` and `monitor pause` need no deploy history.
        from railguard.rehearsal.monitor_steps import deploy_outcome

        monitor_runner = Monitor(targets, settings.monitor, store=store, notifier=notifier,
                                 tz=settings.timezone, on_round=on_round, deploy_outcome=deploy_outcome(settings))
        log.info(format_line({"event": "start", "targets": len(targets),
                              "interval": settings.monitor.interval.total_seconds(), "state": store.path}))
        try:
            if once:
                report = monitor_runner.run_round()  # on_round printed its document
                return ExitCode.WARNING if report.failed else ExitCode.OK
            try:
                monitor_runner.run(threading.Event(), rounds=rounds)
            except KeyboardInterrupt:
                # SIGTERM (docker stop, systemd) and Ctrl-C are how a monitor is meant to stop.
                log.info(format_line({"event": "stop", "reason": "signal"}))
        finally:
            monitor_runner.close()
            if server is not None:
                server.shutdown()
                server.server_close()
    return ExitCode.OK


@monitor.command("list")
@output.json_option
@pass_context
def status_command(ctx: Context, as_json: bool) -> int:
    """Each target: UP/DOWN, uptime over 24h / 7d / 30d, last failure and its reason."""
    settings = ctx.settings()
    now = ctx.now()
    targets = monitor_status(settings, now)
    if targets is None:
        if as_json:
            output.emit_json({"ok": True, "targets": [], "note": "the monitor has not run"})
            return ExitCode.OK
        click.echo(f"the monitor has not run with state_dir {settings.state_dir}")
        return ExitCode.OK
    down = [t for t in targets if t.state.status == "down"]
    if as_json:
        output.emit_json({"ok": not down, "targets": [t.as_dict() for t in targets]})
    else:
        rows = []
        for t in targets:
            s = t.state
            since = f" since {s.down_since:%Y-%m-%d %H:%M}" if s.down_since else ""
            rows.append([t.name, s.status.upper() + since + _held(t, settings.timezone),
                         *(_percent(t.uptime[w]) for w in ("24h", "7d", "30d")),
                         f"{s.last_failure_reason} ({output.human_age(now - s.last_failure_at)} ago)"
                         if s.last_failure_at else "-"])
        output.table(None, ["target", "status", "24h", "7d", "30d", "last failure"], rows)
    return ExitCode.CHECK_FAILED if down else ExitCode.OK


@monitor.command("pause")
@click.argument("name", metavar="APP")
@options.for_option
@options.reason_option()
@output.json_option
@pass_context
def pause_command(ctx: Context, name: str, for_text: str | None, reason: str | None, as_json: bool) -> int:
    """Hold every alert of APP (an app, or one monitor target) until resumed, or for --for.

    The monitor goes on checking and recording (uptime stays true) and sends no DOWN or reminder;
    a target still down when the pause ends is announced at its next failed check. The running
    monitor reads the pause at its next round. Without --for the pause lasts until
    `railguard monitor resume APP`.
    """
    settings = ctx.settings()
    now = ctx.now()
    length = None
    if for_text is not None:
        try:
            length = parse_duration(for_text)
        except ValueError as exc:
            raise UsageError(f"--for: {exc}", hint=f"Try: railguard monitor pause {name} --for 1h") from None
    pause = pause_monitoring(settings, name, now=now, length=length, reason=reason)
    if as_json:
        output.emit_json({"ok": True, "name": name, "paused": pause.as_dict()})
    else:
        click.echo(f"{name}: {pause.describe(settings.timezone)}"
                   + ("" if pause.until else f" (railguard monitor resume {name})"))
    return ExitCode.OK


@monitor.command("resume")
@click.argument("name", metavar="APP")
@output.json_option
@pass_context
def resume_command(ctx: Context, name: str, as_json: bool) -> int:
    """End the pause of APP: its alerts go out again from the monitor's next round."""
    settings = ctx.settings()
    ended = resume_monitoring(settings, name, now=ctx.now())
    if as_json:
        output.emit_json({"ok": True, "name": name, "was_paused": ended is not None,
                          "pause": ended.as_dict() if ended else None})
    else:
        click.echo(f"{name}: resumed" if ended else f"{name}: was not paused")
    return ExitCode.OK


def _held(target: TargetStatus, tz: str) -> str:
    """`` (paused until ...: reason)`` or `` (deploy 42 of ... in progress)``: why no alert goes out."""
    if target.pause is not None:
        return f" ({target.pause.describe(tz)})"
    if target.deploy is not None:
        return f" ({target.deploy.describe()} in progress)"
    return ""


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2%}"


def _round_document(report: RoundReport) -> dict[str, object]:
    return {"ok": not report.failed, "event": "round", "started_at": timestamp(report.started_at),
            "seconds": round(report.seconds, 3), "failed": report.failed, "maintenance": report.maintenance,
            "targets": {name: {"ok": result.ok, "at": timestamp(result.at), "reason": result.reason or None,
                               "response_time": result.response_time}
                        for name, result in report.results.items()},
            "alerts": [{"target": target, "kind": alert.kind, "reason": alert.reason or None}
                       for target, alert, _delivery in report.alerts],
            # The targets whose alerts were held this round: the pause, or the deploy's id.
            "held": {name: {"paused": held.pause is not None,
                            "deploy_id": held.deploy.deploy_id if held.deploy else None}
                     for name, held in report.quiet.items()}}


def _serve_metrics(settings: Settings, address: Listen) -> WSGIServer:
    from railguard.metrics.exposition import serve_metrics

    return serve_metrics(settings, address.host, address.port)
