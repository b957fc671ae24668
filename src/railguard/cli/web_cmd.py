"""``railguard web``: the status page alone (the daemon serves the same pages on its own listen)."""

from __future__ import annotations

import signal
import socket

import click

from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.errors import ExitCode, UsageError
from railguard.values import Listen

pass_context = click.make_pass_decorator(Context)


@cli.command()
@click.option("--listen", metavar="HOST:PORT", help="Where to listen (default: [web] listen, 127.0.0.1:9181).")
@pass_context
def web(ctx: Context, listen: str | None) -> int:
    """Serve the status page: each app's state, backups, drills, deploys and uptime, with charts.

    One overview page, one page per app (/apps/NAME) and the same views as JSON under /api/. On
    any address that is not loopback it needs a token, $RAILGUARD_WEB_TOKEN (or
    $RAILGUARD_WEB_TOKEN_FILE), sent as a Bearer token or as the password of HTTP Basic; it
    refuses to start without one there. [web] public = true opens /public (uptime only) to all.
    Stops on SIGTERM or Ctrl-C.
    """
    # Here, not at the top: `railguard --help` and `status` do not load the web stack.
    import uvicorn

    from railguard.web.app import Access, create_web_app
    from railguard.webserver import ConnectionLimits, uvicorn_config

    settings = ctx.settings({"web.listen": ("--listen", listen)})
    what = "--listen" if listen else "web.listen"
    where = Listen.parse(settings.web.listen, key=what)
    access = Access.for_listen(where, settings, what=what)
    limits = ConnectionLimits()
    try:
        bound = socket.create_server((where.host, where.port), family=socket.AF_INET6 if ":" in where.host else
                                     socket.AF_INET, backlog=limits.backlog())
    except OSError as exc:
        raise UsageError(f"cannot listen on {str(where)!r} ({exc})",
                         hint="Choose a free HOST:PORT with --listen") from None
    port = bound.getsockname()[1]
    click.echo(f"railguard web: {Listen(where.host, port).url}/"
               + (" (token required)" if access.token is not None else ""), err=True)
    config = uvicorn_config(create_web_app(settings, access, ctx.now), host=where.host, port=port,
                            limits=limits, log_level="warning", access_log=False, lifespan="off")
    # uvicorn shuts down on SIGTERM, then raises the signal again for the handler it found. SIGTERM
    # is how a service manager stops this command, so that handler lets it end with OK, not 130.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    with bound:
        uvicorn.Server(config).run(sockets=[bound])
    return ExitCode.OK
