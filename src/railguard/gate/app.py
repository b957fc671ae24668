"""The gate's HTTP surface: plain Starlette handler functions over :class:`GateService`.

=====================  ===================================================================
``POST /hooks/forgejo``  a Forgejo webhook: 401 bad signature, 400 malformed, 413 too large,
                         202 queued or ignored (with the reason), 200 for a replayed delivery
``POST /api/v1/check``   the sh pre-receive hook's request (a ``git archive`` tar); text answer
``GET /runs``            the latest runs: JSON, or HTML for a browser (token, see below)
``GET /runs/{id}``       one run with its log: JSON, or HTML for a browser (token, see below)
``GET /healthz``         200 while the queue is readable and every worker runs, else 503
``GET /metrics``         Prometheus text
=====================  ===================================================================

Runs and logs are for the team, not for whoever reaches the port: with ``$RAILGUARD_GATE_TOKEN``
set they need ``Authorization: Bearer TOKEN`` (or HTTP Basic with the token as the password, so a
browser asks for it); without it the gate only starts on a loopback address (docs/gate.md).

The webhook handler runs on the event loop: verifying, judging and one short SQLite transaction
take well under a millisecond, while a hop to the thread pool per delivery (threads contending for
the queue's lock and the GIL) took the p99 under 50 concurrent deliveries from ~70 ms to ~110 ms
(bench/gate.py). The pre-receive check (a whole test suite) and the pages run in the thread pool.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from railguard.gate.queue import Run, RunNotFound
from railguard.gate.service import GateService


class BodyTooLarge(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"ok": False, "error": f"body larger than {limit} bytes"}, status_code=413)


def _wants_html(request: Request) -> bool:
    if request.query_params.get("format") in {"html", "json"}:
        return request.query_params["format"] == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


def _unauthorised(service: GateService, request: Request) -> Response | None:
    if service.authorised_reader(request.headers.get("authorization")):
        return None
    return JSONResponse({"ok": False, "error": "runs and logs need the gate's read token"}, status_code=401,
                        headers={"WWW-Authenticate": 'Basic realm="railguard gate", charset="UTF-8"'})


def create_app(service: GateService) -> Starlette:
    settings = service.settings.gate

    async def forgejo_webhook(request: Request) -> Response:
        try:
            body = await _read_limited(request, settings.body_limit)
        except BodyTooLarge:
            service.metrics.deliveries.labels("too_large").inc()
            return _too_large(settings.body_limit)
        answer = service.receive_webhook(body, request.headers)
        return JSONResponse(answer.body, status_code=answer.status)

    async def check(request: Request) -> Response:
        if not service.authorised_check(request.headers.get("authorization")):
            return PlainTextResponse("fail\nrailguard: the gate refused the hook's credentials "
                                     f"(check the shared secret, ${settings.check_secret_env})\n", status_code=401)
        try:
            tar = await _read_limited(request, settings.check_body_limit)
        except BodyTooLarge:
            return PlainTextResponse(f"fail\nrailguard: the pushed tree is larger than {settings.check_body_limit}"
                                     " bytes (gate.check_body_limit)\n", status_code=413)
        headers = request.headers
        answer = await run_in_threadpool(
            lambda: service.check_push(app=headers.get("x-railguard-app", ""), ref=headers.get("x-railguard-ref", ""),
                                       old=headers.get("x-railguard-old", ""), new=headers.get("x-railguard-new", ""),
                                       tar=tar or None, pusher=headers.get("x-railguard-pusher", "")[:100]))
        return PlainTextResponse(answer.text(), status_code=200)

    async def runs(request: Request) -> Response:
        if (refused := _unauthorised(service, request)) is not None:
            return refused
        try:
            limit = max(1, min(500, int(request.query_params.get("limit", "50"))))
        except ValueError:
            return JSONResponse({"ok": False, "error": "limit must be a number"}, status_code=400)
        found = await run_in_threadpool(service.runs, limit)
        if _wants_html(request):
            return HTMLResponse(_runs_page(found))
        return JSONResponse({"runs": [run.as_json() for run in found]})

    async def run(request: Request) -> Response:
        if (refused := _unauthorised(service, request)) is not None:
            return refused
        try:
            run_id = int(request.path_params["run_id"])
            found, text = await run_in_threadpool(service.run, run_id)
        except (ValueError, RunNotFound):
            return JSONResponse({"ok": False, "error": f"no run {request.path_params['run_id']}"}, status_code=404)
        if _wants_html(request):
            return HTMLResponse(_run_page(found, text))
        return JSONResponse({**found.as_json(), "log": text})

    async def healthz(request: Request) -> Response:
        answer = await run_in_threadpool(service.health)
        return JSONResponse(answer.body, status_code=answer.status)

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(service.metrics.exposition)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not service.started:
            service.start()
        yield
        service.stop()

    return Starlette(routes=[
        Route("/hooks/forgejo", forgejo_webhook, methods=["POST"]),
        Route("/api/v1/check", check, methods=["POST"]),
        Route("/runs", runs, methods=["GET"]),
        Route("/runs/{run_id}", run, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ], lifespan=lifespan)


# --- pages for people --------------------------------------------------------------------------

_STYLE = """body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd}
code,pre{font:13px/1.4 ui-monospace,monospace}pre{background:#f6f6f6;padding:1em;overflow-x:auto;white-space:pre-wrap}
.s{font-weight:600;padding:.1em .5em;border-radius:.3em}.ok{background:#d6f5d6}.bad{background:#f8d0d0}
.wait{background:#eee}"""
_GOOD = {"passed", "deployed", "skipped"}
_WAITING = {"queued", "running", "superseded"}


def _badge(status: str) -> str:
    kind = "ok" if status in _GOOD else "wait" if status in _WAITING else "bad"
    return f'<span class="s {kind}">{html.escape(status)}</span>'


def _page(title: str, body: str, *, refresh: bool = False) -> str:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def _runs_page(runs: list[Run]) -> str:
    rows = "".join(
        f"<tr><td><a href='/runs/{run.id}'>#{run.id}</a></td><td>{html.escape(run.app)}</td>"
        f"<td><code>{html.escape(run.commit_sha[:12])}</code></td><td>{html.escape(run.ref)}</td>"
        f"<td>{_badge(run.status)}</td><td>{html.escape(run.created_at.isoformat(timespec='seconds'))}</td>"
        f"<td>{html.escape(run.summary[:120])}</td></tr>" for run in runs)
    body = ("<h1>railguard gate: runs</h1><table><tr><th>run</th><th>app</th><th>commit</th><th>ref</th>"
            f"<th>status</th><th>queued</th><th>summary</th></tr>{rows}</table>")
    return _page("railguard gate: runs", body, refresh=any(not run.finished for run in runs))


def _run_page(run: Run, log_text: str) -> str:
    timings = run.timings()
    facts = [("app", html.escape(run.app)), ("status", _badge(run.status)),
             ("commit", f"<code>{html.escape(run.commit_sha)}</code>"), ("ref", html.escape(run.ref)),
             ("title", html.escape(run.title)), ("pusher", html.escape(run.pusher)),
             ("source", html.escape(run.source)), ("summary", html.escape(run.summary))]
    for key in ("created_at", "started_at", "tests_started_at", "tests_finished_at", "deploy_called_at",
                "finished_at"):
        value = getattr(run, key)
        facts.append((key.replace("_", " "), html.escape(value.isoformat(timespec="seconds")) if value else "-"))
    for key, seconds in timings.items():
        facts.append((f"{key} seconds", f"{seconds:.1f}" if seconds is not None else "-"))
    if run.superseded_by:
        facts.append(("superseded by", f"<a href='/runs/{run.superseded_by}'>#{run.superseded_by}</a>"))
    if run.retry_of:
        facts.append(("retry of", f"<a href='/runs/{run.retry_of}'>#{run.retry_of}</a>"))
    table = "".join(f"<tr><th>{key}</th><td>{value}</td></tr>" for key, value in facts)
    body = (f"<p><a href='/runs'>all runs</a></p><h1>run #{run.id}</h1><table>{table}</table>"
            f"<h2>log</h2><pre>{html.escape(log_text) or '(empty)'}</pre>")
    return _page(f"railguard gate: run #{run.id} {run.status}", body, refresh=not run.finished)
