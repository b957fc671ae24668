"""A fake Forgejo commit-status API on 127.0.0.1 that records every call.

Follows /work/shared/reference/forgejo-caprover.md and Forgejo's API:

* ``POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`` with JSON ``state`` (``pending``,
  ``success``, ``error``, ``failure``, ``warning``), ``context``, ``description``, ``target_url``
  answers **201** with the stored status (an ``id``, ``created_at``, the fields echoed back);
* ``Authorization: token <TOKEN>`` (also ``Bearer``) must match, else **401**; then, in the order of
  Forgejo's middleware (routers/api/v1/api.go, ``Routes``: the ``/repos`` group runs
  ``tokenRequiresScopes(AccessTokenScopeCategoryRepository)`` before the inner
  ``repoAssignment, repoAccess``, the route itself ``reqToken, reqRepoWriter(unit.TypeCode)``):
  a token without ``write:repository`` (``read:repository`` for a GET) is **403** "token does not
  have at least one of required scope(s)" (``tokenRequiresScopes``), whatever the repository; a
  repository that does not exist or that the token's user cannot see (a private one) is **404**
  (``repoAssignment``, ``repoAccess``: ``ctx.NotFound()``, never 403, so as not to reveal it); a
  user who may read but not write is **403** "user should have a permission to write to a repo"
  (``reqRepoWriter``); an unknown state is **422**;
* ``GET /api/v1/repos/{owner}/{repo}/commits/{ref}/statuses`` lists them, newest first.
* A status is kept under the SHA of the URL, as Forgejo/Gitea versions whose
  ``CreateCommitStatus`` (services/repository/files/commitstatus.go) store ``SHA: sha`` do: one
  posted on an annotated tag's object id never shows on the commit's page (newer versions store
  ``commit.ID``, the peeled commit). The gate posts on the commit, right for both.

Also, for the tests that need it: :func:`push_payload` builds a push webhook body shaped like
Forgejo's (every field the reference lists), :func:`signed_headers` the headers Forgejo
sends with it, signatures included, and :func:`form_delivery` what a webhook with the content
type ``application/x-www-form-urlencoded`` sends.

Usage::

    with FakeForgejo(token="t0k", repositories={"dev/tasks"}) as forgejo:
        ... railguard posts to forgejo.url ...
        assert [s.state for s in forgejo.statuses_for(sha)] == ["pending", "success"]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fakes import LoopbackFake

STATES = {"pending", "success", "error", "failure", "warning"}
ZERO_SHA = "0" * 40


@dataclass
class RecordedCall:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    http_status: int


@dataclass
class CommitStatus:
    id: int
    repository: str
    sha: str
    state: str
    context: str
    description: str
    target_url: str
    created_at: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.state, "context": self.context, "description": self.description,
                "target_url": self.target_url, "created_at": self.created_at, "updated_at": self.created_at,
                "url": f"/api/v1/repos/{self.repository}/statuses/{self.sha}"}


class FakeForgejo(LoopbackFake):
    content_type = "application/json;charset=utf-8"
    thread_name = "fake-forgejo"

    def __init__(self, *, token: str, repositories: set[str], scopes: set[str] | None = None,
                 read_only: set[str] | None = None, hidden: set[str] | None = None) -> None:
        """``token`` may write to ``repositories`` (with ``scopes``, by default ``write:repository``);
        ``read_only`` repositories it may only read; ``hidden`` ones exist but it cannot see them."""
        self.token = token
        self.repositories = set(repositories)
        self.scopes = {"write:repository"} if scopes is None else set(scopes)
        self.read_only = set(read_only or ())
        self.hidden = set(hidden or ())
        self.calls: list[RecordedCall] = []
        self.statuses: list[CommitStatus] = []
        self._lock = threading.Lock()


    def statuses_for(self, sha: str) -> list[CommitStatus]:
        """Every status posted for ``sha``, oldest first."""
        with self._lock:
            return [status for status in self.statuses if status.sha == sha]

    def states_for(self, sha: str) -> list[str]:
        return [status.state for status in self.statuses_for(sha)]

    # --- request handling -------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self._lock:
            status, document = self._route(method, path, headers, body)
            self.calls.append(RecordedCall(method, path, headers, body, status))
            return status, document

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "repos"] or len(parts) < 6:
            return 404, {"message": "Not Found"}
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in {"token", "bearer"} or not hmac.compare_digest(given.encode(), self.token.encode()):
            return 401, {"message": "token is required"}
        # routers/api/v1/api.go tokenRequiresScopes: write:* for POST/PUT/PATCH/DELETE, else read:*;
        # a write scope includes the read one (models/auth/access_token_scope.go, HasScope).
        needed = "write:repository" if method in {"POST", "PUT", "PATCH", "DELETE"} else "read:repository"
        if needed not in self.scopes and not (needed.startswith("read:") and "write:repository" in self.scopes):
            return 403, {"message": f"token does not have at least one of required scope(s): [{needed}]",
                         "url": "http://forgejo.test/api/swagger"}
        repository = f"{parts[3]}/{parts[4]}"
        if repository not in self.repositories | self.read_only:
            # repoAssignment (no such repository) and repoAccess (cannot see it) both answer
            # ctx.NotFound(): a private repository is not revealed to a token that cannot see it.
            return 404, {"errors": ["The target couldn't be found."], "message": "The target couldn't be found.",
                         "url": "http://forgejo.test/api/swagger"}
        if method == "POST" and repository in self.read_only:
            return 403, {"message": "user should have a permission to write to a repo",
                         "url": "http://forgejo.test/api/swagger"}
        if method == "POST" and parts[5] == "statuses" and len(parts) == 7:
            try:
                document = json.loads(body)
            except ValueError:
                return 422, {"message": "invalid JSON"}
            state = document.get("state")
            if state not in STATES:
                return 422, {"message": f"invalid state {state!r}"}
            status = CommitStatus(id=len(self.statuses) + 1, repository=repository, sha=parts[6], state=state,
                                  context=str(document.get("context") or "default"),
                                  description=str(document.get("description") or ""),
                                  target_url=str(document.get("target_url") or ""),
                                  created_at=datetime.now(timezone.utc).isoformat())
            self.statuses.append(status)
            return 201, status.as_json()
        if method == "GET" and parts[5] == "commits" and len(parts) == 8 and parts[7] == "statuses":
            found = [s.as_json() for s in reversed(self.statuses) if s.repository == repository and s.sha == parts[6]]
            return 200, found
        return 404, {"message": "Not Found"}



# --- what Forgejo sends with a push -------------------------------------------------------------

def push_payload(*, ref: str, before: str, after: str, clone_url: str, full_name: str = "dev/tasks",
                 commits: list[dict[str, Any]] | None = None, html_base: str = "http://forgejo.test") -> dict[str, Any]:
    """A push payload with the fields Forgejo sends (``commits`` capped at 15, as Forgejo does)."""
    owner, name = full_name.split("/", 1)
    user = {"id": 1, "login": "dev", "username": "dev", "full_name": "Dev", "email": "dev@example.test"}
    commits = (commits if commits is not None else [{"id": after, "message": "change\n"}])[:15]
    shaped = [{
        "id": c["id"], "message": c.get("message", "change\n"), "url": f"{html_base}/{full_name}/commit/{c['id']}",
        "author": {"name": "Dev", "email": "dev@example.test", "username": "dev"},
        "committer": {"name": "Dev", "email": "dev@example.test", "username": "dev"},
        "verification": None, "timestamp": "2026-11-27T04:00:00Z",
        "added": c.get("added", []), "removed": c.get("removed", []), "modified": c.get("modified", []),
    } for c in commits]
    return {
        "ref": ref, "before": before, "after": after,
        "compare_url": f"{html_base}/{full_name}/compare/{before}...{after}",
        "commits": shaped, "total_commits": len(shaped), "head_commit": shaped[-1] if shaped else None,
        "repository": {"id": 7, "owner": user, "name": name, "full_name": full_name, "private": True,
                       "fork": False, "html_url": f"{html_base}/{full_name}", "clone_url": clone_url,
                       "ssh_url": f"git@forgejo.test:{full_name}.git", "default_branch": "main",
                       "empty": False, "archived": False},
        "pusher": user, "sender": user,
    }


def tag_push_payload(*, tag: str, after: str, commit: str, clone_url: str, message: str = "release\n",
                     **options: Any) -> dict[str, Any]:
    """What Forgejo sends for a new tag (services/repository/push.go, ``pushUpdates``, "is new tag"):
    ``before`` forty zeros, ``after`` the ref's new value as git received it (``opts.NewCommitID``:
    for an annotated tag the **tag object**, not the commit), no ``commits``, and ``head_commit``
    the commit the tag names (``gitRepo.GetCommit`` peels the tag)."""
    payload = push_payload(ref=f"refs/tags/{tag}", before=ZERO_SHA, after=after, clone_url=clone_url,
                           commits=[{"id": commit, "message": message}], **options)
    payload["head_commit"], payload["commits"], payload["total_commits"] = payload["commits"][0], [], 0
    return payload


def forgejo_json(payload: dict[str, Any]) -> bytes:
    """The payload as Forgejo serialises it: ``json.MarshalIndent(p, "", "  ")`` (modules/structs/hook.go,
    ``PushPayload.JSONPayload``; services/webhook/default.go ``addCompatCompareUrl`` re-marshals it the
    same way and adds ``compare``, a copy of ``compare_url``, for a Forgejo-type hook's push)."""
    return json.dumps({**payload, "compare": payload.get("compare_url", "")}, indent=2, ensure_ascii=False).encode()


def form_delivery(payload_json: bytes, secret: str, **options: Any) -> tuple[bytes, dict[str, str]]:
    """A delivery with the content type ``application/x-www-form-urlencoded``: the body is
    ``payload=<urlencoded JSON>`` (``url.Values{"payload": ...}.Encode()``, which escapes like
    :func:`urllib.parse.urlencode`) but the signatures are over the JSON itself
    (services/webhook/default.go ``defaultHandler.NewRequest`` passes ``[]byte(payloadContent)`` to
    ``shared.AddDefaultHeaders``, services/webhook/shared/payloader.go)."""
    body = urllib.parse.urlencode({"payload": payload_json.decode("utf-8")}).encode("ascii")
    headers = signed_headers(payload_json, secret, **options)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return body, headers


def signed_headers(body: bytes, secret: str, *, event: str = "push", delivery: str | None = None,
                   which: str = "all") -> dict[str, str]:
    """The headers Forgejo sends (services/webhook/shared/payloader.go ``AddDefaultHeaders``): event and
    delivery under X-Forgejo-*, X-Gitea-*, X-Gogs-* and GitHub's names, the SHA-256 HMAC bare and as
    ``sha256=``, the SHA-1 one as ``X-Hub-Signature``. ``which`` keeps only one signature header
    (``forgejo``, ``gitea`` or ``hub``) to test each on its own."""
    delivery = delivery or str(uuid.uuid4())
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Forgejo-Event": event, "X-Forgejo-Event-Type": event,
               "X-Forgejo-Delivery": delivery, "X-Gitea-Event": event, "X-Gitea-Event-Type": event,
               "X-Gitea-Delivery": delivery, "X-Gogs-Event": event, "X-GitHub-Event": event,
               "X-GitHub-Event-Type": event, "X-GitHub-Delivery": delivery,
               "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}
    signatures = {"forgejo": {"X-Forgejo-Signature": digest}, "gitea": {"X-Gitea-Signature": digest},
                  "hub": {"X-Hub-Signature-256": "sha256=" + digest}}
    if which == "all":
        for extra in signatures.values():
            headers.update(extra)
        headers["X-Gogs-Signature"] = digest
    else:
        headers.update(signatures[which])
    return headers
