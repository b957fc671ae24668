"""The daemon's control API for the monitor: pause and resume a target over HTTP.

==================================  ==========================================================
``POST /api/monitor/{name}/pause``   body (optional) ``{"for": "1h", "reason": "moving the disk"}``;
                                     200 ``{"ok": true, "name": ..., "paused": {since, until, reason}}``
``POST /api/monitor/{name}/resume``  200 ``{"ok": true, "name": ..., "was_paused": true|false, "pause": ...}``
==================================  ==========================================================

These routes change state, so they want the token whatever the listen address: without
``$RAILGUARD_WEB_TOKEN`` they answer 401 to everyone, loopback included (the read-only pages may
go without a token on loopback; a pause from any local process that can reach the port may not).
Only ``Authorization: Bearer TOKEN`` counts here, never HTTP Basic: a browser sends cached Basic
credentials by itself with a cross-site form POST, and a Bearer header it never adds on its own,
so a page elsewhere cannot pause the monitor through a logged-in browser. The token is compared
in constant time (:func:`railguard.secrets.presented`).

Each handler is :func:`railguard.monitor.pause.pause_monitoring` or ``resume_monitoring``, the
same calls as ``railguard monitor pause|resume``; a refused request gets the library's message
and hint as JSON, with the HTTP status that matches its exit code. They write SQLite, so they
run in the thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from railguard.config import Settings
from railguard.errors import Busy, NotFound, RailguardError, UsageError
from railguard.monitor.pause import pause_monitoring, resume_monitoring
from railguard.secrets import presented
from railguard.values import parse_duration
from railguard.web.app import TOKEN_ENV, Access
from railguard.web.model import plain

Handler = Callable[[Request], Awaitable[Response]]

#: A pause's body is two short fields; anything much larger is not one.
MAX_BODY = 4096
_FIELDS = {"for", "reason"}


def monitor_api_routes(settings: Settings, access: Access, clock: Callable[[], datetime]) -> list[BaseRoute]:
    """The two routes, to join the daemon's table. ``clock`` gives "now" for each request."""

    def with_token(handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            if access.token is None or not presented(request.headers.get("authorization"), access.token,
                                                     basic=False):
                why = ("this daemon has no token, and a change to the monitor needs one"
                       if access.token is None else "a change to the monitor needs the token")
                return _error(401, RailguardError(
                    why, hint=f"Send Authorization: Bearer $TOKEN (the daemon's ${TOKEN_ENV})"),
                    headers={"WWW-Authenticate": 'Bearer realm="railguard"'})
            return await handler(request)
        return checked

    async def pause(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            fields = await _fields(request)
            length = None
            if fields.get("for") is not None:
                try:
                    length = parse_duration(fields["for"])
                except ValueError as exc:
                    raise UsageError(f"for: {exc}", hint='Send {"for": "1h"}, or leave it out to pause until resumed')
            reason = fields.get("reason")
            if reason is not None and not isinstance(reason, str):
                raise UsageError("reason: expected a string", hint='Send {"reason": "moving the disk"}')
            done = await run_in_threadpool(lambda: pause_monitoring(settings, name, now=clock(), length=length,
                                                                    reason=reason))
        except RailguardError as exc:
            return _error(_status(exc), exc)
        return _json(200, {"ok": True, "name": name, "paused": done.as_dict()})

    async def resume(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            await _fields(request)  # nothing to read, but a body that is not JSON is still refused
            ended = await run_in_threadpool(lambda: resume_monitoring(settings, name, now=clock()))
        except RailguardError as exc:
            return _error(_status(exc), exc)
        return _json(200, {"ok": True, "name": name, "was_paused": ended is not None,
                           "pause": ended.as_dict() if ended else None})

    return [
        Route("/api/monitor/{name}/pause", with_token(pause), methods=["POST"]),
        Route("/api/monitor/{name}/resume", with_token(resume), methods=["POST"]),
    ]


async def _fields(request: Request) -> dict[str, Any]:
    """The JSON object in the body ({} for an empty body); refused with a UsageError otherwise."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise UsageError(f"the request body is larger than {MAX_BODY} bytes",
                             hint='Send {"for": "1h", "reason": "..."} or nothing')
    if not body.strip():
        return {}
    try:
        fields = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the request body is not JSON", hint='Send {"for": "1h", "reason": "..."} or nothing') from None
    if not isinstance(fields, dict):
        raise UsageError("the request body is not a JSON object", hint='Send {"for": "1h", "reason": "..."}')
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise UsageError(f"unknown field(s) in the request body: {', '.join(unknown)}",
                         hint="The fields are: for, reason")
    return fields


def _status(exc: RailguardError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, Busy):
        return 503
    return 500


def _error(status: int, exc: RailguardError, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"ok": False, "error": exc.message, "hint": exc.hint}, headers)


def _json(status: int, value: object, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(plain(value), status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})
