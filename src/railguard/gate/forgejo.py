"""Forgejo's commit-status API: ``pending`` while a commit is tested, then ``success`` or ``failure``.

``POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`` with ``state``, ``context``,
``description`` and ``target_url``, authorised by ``Authorization: token <TOKEN>`` (the
token needs ``write:repository``); Forgejo answers 201. A status is information for people:
a failure to post one is logged and never stops a run. The POST goes through
:func:`railguard.http.request` (docs/http.md): the environment's proxy, no redirect followed,
``timeout`` for connecting and reading, no retry (a status is information, the next one follows).

Forgejo's refusals each mean one thing to fix (routers/api/v1/api.go, the ``/repos`` routes):
401 an unknown token; 403 a token without the ``write:repository`` scope
(``tokenRequiresScopes``, checked before the repository is even looked up) or a user who may
only read the repository (``reqRepoWriter``); 404 a repository that does not exist **or that
the token's user cannot see** (``repoAssignment``/``repoAccess`` answer ``NotFound`` for a
private repository rather than reveal it). :func:`refusal_hint` says which.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from railguard import http
from railguard.errors import ConfigError
from railguard.secrets import Secret, redact

log = logging.getLogger("railguard.gate")

CONTEXT = "railguard/tests"
State = Literal["pending", "success", "error", "failure", "warning"]
#: Forgejo keeps a status description to 255 characters.
DESCRIPTION_LIMIT = 255


@dataclass(frozen=True)
class StatusPosted:
    ok: bool
    detail: str


@dataclass
class ForgejoStatuses:
    base_url: str
    token: Secret | None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.base_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ConfigError(f"gate.forgejo_url {self.base_url!r} is not an http(s) URL",
                              hint="Use Forgejo's base URL, e.g. https://git.example.com")
        self.base_url = self.base_url.rstrip("/")

    def post(self, repository: str, sha: str, state: State, description: str, target_url: str | None) -> StatusPosted:
        """Post one status; never raises for a Forgejo or network problem (the result says what happened)."""
        owner, _, name = repository.partition("/")
        path = (f"/api/v1/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(name, safe='')}"
                f"/statuses/{urllib.parse.quote(sha, safe='')}")
        body = {"state": state, "context": CONTEXT, "description": description[:DESCRIPTION_LIMIT]}
        if target_url:
            body["target_url"] = target_url
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "railguard-gate"}
        if self.token is not None:
            headers["Authorization"] = f"token {self.token.reveal()}"
        try:
            reply = http.request("POST", self.base_url + path, service="Forgejo", where=self.base_url,
                                 timeout=self.timeout, proxy="environment", headers=headers,
                                 body=json.dumps(body).encode(), read_limit=300)
        except http.Unreachable as exc:
            result = StatusPosted(False, exc.message)
        else:
            if 200 <= reply.status < 300:
                return StatusPosted(True, f"{state} posted (HTTP {reply.status})")
            detail = redact(reply.body.decode("utf-8", "replace"), [self.token])
            hint = refusal_hint(reply.status, detail, repository)
            result = StatusPosted(False, f"Forgejo refused the {state} status: HTTP {reply.status} {detail}".strip()
                                  + (f"; hint: {hint}" if hint else ""))
        log.warning("commit status for %s: %s", sha[:12], result.detail)
        return result


def refusal_hint(code: int, detail: str, repository: str) -> str | None:
    """What to fix for Forgejo's answer ``code`` (with its body ``detail``) to a status post."""
    if code == 401:
        return ("Forgejo does not know the token: set the variable gate.forgejo_token_env names "
                "(FORGEJO_TOKEN by default) to a valid token")
    if code == 403 and "scope" in detail:
        return "the token lacks the write:repository scope: create one with it (Settings > Applications)"
    if code == 403:
        return (f"the token's user may read {repository} but not write to it: give that user write access "
                "(a collaborator with Write), or use a token of a user who has it")
    if code == 404:
        return (f"Forgejo shows no repository {repository} to this token: check gate.apps.NAME.repository, and "
                "that the token's user can see it (a private repository answers 404, not 403)")
    return None
