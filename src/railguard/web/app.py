"""The status page's routes, and who may read them.

=========================  ==============================================================
``GET /``                  the overview: each app's state and newest backup, the monitor's
                           targets with their charts and incidents, heartbeats, the daemon's jobs
``GET /apps/{name}``       one app: backups over 30 days, copies, retention, drills, deploys
                           with their gate runs, heartbeats
``GET /public``            uptime only; without the token when ``[web] public = true``
``GET /api/overview``      the same views as JSON (``/api/apps/{name}``, ``/api/public``)
=========================  ==============================================================

Access follows the gate's read token (:mod:`railguard.gate.service`): without a token only a
loopback listen address is allowed (:meth:`Access.for_listen` refuses any other, so a page
cannot end up on the network by accident); with one, every page and ``/api/`` route wants it,
as ``Authorization: Bearer TOKEN`` or, for a browser, HTTP Basic with the token as the password
(any user name). It is compared with :func:`hmac.compare_digest`. A refused request gets 401
and nothing else: no state, no app name. The public page, when on, is built by
:func:`railguard.web.model.build_public`, which leaves out URLs, failure reasons, commits and logs.

The handlers read SQLite files and backup directories, so they run in the thread pool, never on
the event loop that accepts and times out connections (as the daemon's ``/healthz`` does).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from railguard.config import Settings
from railguard.errors import ConfigError, NotFound
from railguard.secrets import Secret, presented, read_secret
from railguard.values import Listen
from railguard.web.model import build_app, build_overview, build_public, plain
from railguard.web.pages import Pages

TOKEN_ENV = "RAILGUARD_WEB_TOKEN"
_UNAUTHORISED = b"401: this page needs the status page's token (RAILGUARD_WEB_TOKEN)\n"

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Access:
    """Who may read: everyone who reaches the port (``token`` None, loopback only), or whoever
    sends the token; ``public``: ``/public`` is open to everyone either way."""

    token: Secret | None
    public: bool = False

    @classmethod
    def for_listen(cls, listen: Listen, settings: Settings, env: Mapping[str, str] = os.environ,
                   *, what: str = "web.listen") -> Access:
        """The access for a server on ``listen``: the token from ``$RAILGUARD_WEB_TOKEN`` or
        ``$RAILGUARD_WEB_TOKEN_FILE``, required unless the host is a loopback address."""
        token = read_secret(TOKEN_ENV, env)
        if token is None and not listen.is_loopback:
            raise ConfigError(f"{what} = {str(listen)!r} is not a loopback address and ${TOKEN_ENV} is not set: "
                              "anyone who reaches it could read every app's backups, deploys and drills",
                              hint=f"Export {TOKEN_ENV} (or {TOKEN_ENV}_FILE), or listen on 127.0.0.1 behind a proxy")
        return cls(token, settings.web.public)

    def allows(self, authorization: str | None) -> bool:
        return self.token is None or presented(authorization, self.token)


def web_routes(settings: Settings, access: Access, clock: Callable[[], datetime]) -> list[BaseRoute]:
    """The pages and ``/api/`` routes, to join a Starlette route table (the daemon's, or
    :func:`create_web_app`'s). ``clock`` gives "now" for each request."""
    pages = Pages(refresh_seconds=max(5, int(settings.web.refresh.total_seconds())))

    def guarded(handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            if not access.allows(request.headers.get("authorization")):
                return Response(_UNAUTHORISED, status_code=401, media_type="text/plain",
                                headers={"WWW-Authenticate": 'Basic realm="railguard", charset="UTF-8"'})
            return await handler(request)
        return checked

    def json_response(value: object) -> Response:
        return JSONResponse(plain(value), headers={"Cache-Control": "no-store"})

    def html_response(text: str) -> Response:
        return HTMLResponse(text, headers={"Cache-Control": "no-store"})

    def not_found(exc: NotFound) -> Response:
        return Response(f"404: {exc.message}\n".encode(), status_code=404, media_type="text/plain")

    async def overview(request: Request) -> Response:
        return html_response(await run_in_threadpool(
            lambda: pages.overview(build_overview(settings, clock()), settings.timezone)))

    async def app_page(request: Request) -> Response:
        try:
            return html_response(await run_in_threadpool(
                lambda: pages.app(build_app(settings, request.path_params["name"], clock()))))
        except NotFound as exc:
            return not_found(exc)

    async def api_overview(request: Request) -> Response:
        return json_response(await run_in_threadpool(lambda: build_overview(settings, clock())))

    async def api_app(request: Request) -> Response:
        try:
            return json_response(await run_in_threadpool(lambda: build_app(settings, request.path_params["name"],
                                                                           clock())))
        except NotFound as exc:
            return not_found(exc)

    def public(handler: Handler) -> Handler:
        # Off, the public page is one more page for those who may read the others.
        return handler if access.public else guarded(handler)

    async def public_page(request: Request) -> Response:
        return html_response(await run_in_threadpool(lambda: pages.public(build_public(settings, clock()))))

    async def api_public(request: Request) -> Response:
        return json_response(await run_in_threadpool(lambda: build_public(settings, clock())))

    return [
        Route("/", guarded(overview), methods=["GET"]),
        Route("/apps/{name}", guarded(app_page), methods=["GET"]),
        Route("/public", public(public_page), methods=["GET"]),
        Route("/api/overview", guarded(api_overview), methods=["GET"]),
        Route("/api/apps/{name}", guarded(api_app), methods=["GET"]),
        Route("/api/public", public(api_public), methods=["GET"]),
    ]


def create_web_app(settings: Settings, access: Access, clock: Callable[[], datetime]) -> Starlette:
    """``railguard web``'s app: the pages alone."""
    return Starlette(routes=web_routes(settings, access, clock))
