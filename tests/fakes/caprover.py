"""A fake CapRover on 127.0.0.1 that behaves like the real one where railguard depends on it.

Follows /work/shared/reference/forgejo-caprover.md and CapRover's sources, quirks included:

* every reply is the envelope ``{status, description, data}`` with **HTTP 200 even on
  failure** (100 OK, 101 deploy started, 1000 generic error, 1102 not authorised, 1105 wrong
  password, 1106 auth token invalid);
* HTTP 429 "Another operation still in progress" while the lock is held (``busy_responses``
  makes the next N requests meet it);
* ``POST /api/v2/user/apps/appData/<app>?detached=1`` parses the multipart form, keeps the
  uploaded tar and ``gitHash``, and builds it: a tree with neither ``captain-definition`` nor
  ``Dockerfile`` at its root fails to build; ``captainDefinitionContent`` with
  ``FROM img-captain-<app>:<n>`` fails unless that image was built here;
* the app token (``x-captain-app-token``) is accepted on that route only; build status and
  the version list need ``x-captain-auth`` from ``POST /api/v2/login``;
* versions are numbered like CapRover's ``createNewVersion`` (one more than the highest),
  images are ``img-captain-<app>:<version>``, and only the last 50 versions are kept;
* the build webhook builds **the configured branch's head at build time** (read from a real
  git repository), ignores pushes to other branches and tag pushes, builds anyway when the
  event is not recognised, and a second trigger replaces a queued build.

Usage::

    with FakeCapRover(password="pw") as captain:
        app = captain.add_app("tasks", app_token="t0ken", webhook_token="w3bhook", repository=repo)
        ... railguard talks to captain.url ...
        assert captain.deployments[-1].git_hash == sha

A build started in detached mode finishes after ``build_polls`` status requests (default 1),
so a client that polls sees ``isAppBuilding`` once; no wall-clock time is involved.
``finish_builds()`` ends every running build at once. A subclass that needs to act when a
build ends (start the built app, say) overrides ``_complete_build(app)`` and calls super().
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import secrets
import subprocess
import tarfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from fakes import LoopbackFake

STATUS_OK = 100
STATUS_OK_DEPLOY_STARTED = 101
STATUS_ERROR_GENERIC = 1000
STATUS_ERROR_NOT_AUTHORIZED = 1102
STATUS_WRONG_PASSWORD = 1105
STATUS_AUTH_TOKEN_INVALID = 1106
VERSIONS_KEPT = 50


@dataclass
class RecordedCall:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    #: Multipart text fields, and file fields as bytes (parsed only for multipart bodies).
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    http_status: int = 200
    envelope: dict[str, Any] | None = None


@dataclass
class Version:
    version: int
    git_hash: str | None
    time_stamp: str
    image: str | None = None

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"version": self.version, "timeStamp": self.time_stamp, "gitHash": self.git_hash}
        if self.image:
            document["deployedImageName"] = self.image
        return document


@dataclass
class Deployment:
    """One build CapRover ran (successful or not)."""

    app: str
    version: int
    git_hash: str | None
    source: Literal["upload", "definition", "webhook"]
    tar: bytes | None
    definition: dict[str, Any] | None
    ok: bool
    image: str | None
    log: list[str]


@dataclass
class FakeApp:
    name: str
    app_token: str | None = None
    webhook_token: str | None = None
    branch: str = "main"
    #: The git repository the build webhook "clones" (its branch head is read at build time).
    repository: Path | None = None
    versions: list[Version] = field(default_factory=list)
    deployed_version: int = 0
    building: Deployment | None = None
    polls_left: int = 0
    build_failed: bool = False
    log_lines: list[str] = field(default_factory=list)
    queued_webhook_build: bool = False


class FakeCapRover(LoopbackFake):
    thread_name = "fake-caprover"

    def __init__(self, *, password: str = "captain-password", build_polls: int = 1,
                 webhook_builds: Literal["immediate", "queued"] = "immediate") -> None:
        self.password = password
        self.build_polls = build_polls
        self.webhook_builds = webhook_builds
        self.apps: dict[str, FakeApp] = {}
        self.calls: list[RecordedCall] = []
        self.deployments: list[Deployment] = []
        self.images: set[str] = set()
        #: Quirks: the next N requests get HTTP 429; the next N builds fail.
        self.busy_responses = 0
        self.fail_next_builds = 0
        self._auth_tokens: set[str] = set()
        self._lock = threading.RLock()

    # --- lifecycle ------------------------------------------------------------------------------


    # --- setup and inspection -------------------------------------------------------------------

    def add_app(self, name: str, *, app_token: str | None = None, webhook_token: str | None = None,
                branch: str = "main", repository: Path | None = None) -> FakeApp:
        with self._lock:
            app = FakeApp(name=name, app_token=app_token, webhook_token=webhook_token, branch=branch,
                          repository=repository)
            self.apps[name] = app
            return app

    def calls_to(self, path_prefix: str, method: str | None = None) -> list[RecordedCall]:
        return [c for c in self.calls if c.path.startswith(path_prefix) and (method is None or c.method == method)]

    def finish_builds(self) -> None:
        """Finish every running build now (as if the client had polled long enough)."""
        with self._lock:
            for app in self.apps.values():
                if app.building is not None:
                    self._complete_build(app)

    def run_queued_webhook_builds(self) -> list[Deployment]:
        """Run the builds the webhook queued (``webhook_builds="queued"``), reading each branch head now."""
        with self._lock:
            started = []
            for app in self.apps.values():
                if app.queued_webhook_build:
                    app.queued_webhook_build = False
                    started.append(self._build_from_branch(app))
            self.finish_builds()
            return started

    # --- request handling (called from the server's threads) ------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            split = urllib.parse.urlsplit(raw_path)
            query = dict(urllib.parse.parse_qsl(split.query))
            call = RecordedCall(method=method, path=split.path, query=query, headers=headers, body=body)
            self.calls.append(call)
            if headers.get("content-type", "").startswith("multipart/form-data"):
                call.fields, call.files = _parse_multipart(headers["content-type"], body)
            if self.busy_responses > 0:
                self.busy_responses -= 1
                status, envelope = 429, _envelope(STATUS_ERROR_GENERIC,
                                                  "Another operation still in progress... please wait...")
            else:
                status, envelope = 200, self._route(method, split.path, query, headers, body, call)
            call.http_status, call.envelope = status, envelope
            return status, envelope

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
               call: RecordedCall) -> dict[str, Any]:
        if method == "POST" and path == "/api/v2/login":
            return self._login(body)
        if method == "POST" and path == "/api/v2/user/apps/webhooks/triggerbuild":
            return self._trigger(query, headers, body)
        if path.startswith("/api/v2/user/apps/appData/"):
            name = urllib.parse.unquote(path.removeprefix("/api/v2/user/apps/appData/").strip("/"))
            app = self.apps.get(name)
            if method == "POST":
                # CapRover loads the app definition before it checks an app token.
                if app is None:
                    return _envelope(STATUS_ERROR_GENERIC,
                                     f"App ({name}) could not be found. Make sure that you have created the app.")
                denied = self._authorise(headers, app_token_for=app)
                if denied:
                    return denied
                return self._deploy(app, query, call)
            denied = self._authorise(headers)
            if denied:
                return denied
            if app is None:
                return _envelope(STATUS_ERROR_GENERIC,
                                 f"App ({name}) could not be found. Make sure that you have created the app.")
            return self._build_status(app)
        if method == "GET" and path == "/api/v2/user/apps/appDefinitions":
            denied = self._authorise(headers)
            if denied:
                return denied
            return _envelope(STATUS_OK, "App definitions are retrieved.", {
                "appDefinitions": [{"appName": a.name, "deployedVersion": a.deployed_version,
                                    "versions": [v.as_json() for v in a.versions]} for a in self.apps.values()],
                "rootDomain": "captain.test", "defaultNginxConfig": ""})
        return _envelope(STATUS_ERROR_GENERIC, f"Unknown route {method} {path}")

    def _login(self, body: bytes) -> dict[str, Any]:
        try:
            password = json.loads(body or b"{}").get("password")
        except ValueError:
            password = None
        if password != self.password:
            return _envelope(STATUS_WRONG_PASSWORD, "Password is incorrect.")
        token = secrets.token_hex(16)
        self._auth_tokens.add(token)
        return _envelope(STATUS_OK, "Login succeeded", {"token": token})

    def _authorise(self, headers: dict[str, str], app_token_for: FakeApp | None = None) -> dict[str, Any] | None:
        auth = headers.get("x-captain-auth")
        if auth:
            return None if auth in self._auth_tokens else _envelope(STATUS_AUTH_TOKEN_INVALID,
                                                                     "Auth token corrupted")
        app_token = headers.get("x-captain-app-token")
        if app_token is not None and app_token_for is not None:
            if app_token_for.app_token and secrets.compare_digest(app_token, app_token_for.app_token):
                return None
            return _envelope(STATUS_AUTH_TOKEN_INVALID, "Auth token corrupted")
        return _envelope(STATUS_ERROR_NOT_AUTHORIZED, "No token")

    def _deploy(self, app: FakeApp, query: dict[str, str], call: RecordedCall) -> dict[str, Any]:
        git_hash = call.fields.get("gitHash") or None
        if "sourceFile" in call.files:
            deployment = self._start_build(app, git_hash, "upload", tar=call.files["sourceFile"], definition=None)
        elif "captainDefinitionContent" in call.fields:
            try:
                definition = json.loads(call.fields["captainDefinitionContent"])
            except ValueError:
                return _envelope(STATUS_ERROR_GENERIC, "captainDefinitionContent is not valid JSON")
            deployment = self._start_build(app, git_hash, "definition", tar=None, definition=definition)
        else:
            return _envelope(STATUS_ERROR_GENERIC, "Either tarballfile or captainDefinitionContent should be present.")
        if query.get("detached"):
            return _envelope(STATUS_OK_DEPLOY_STARTED, "Deploy is started")
        self._complete_build(app)
        if not deployment.ok:
            return _envelope(STATUS_ERROR_GENERIC, "Build has failed: " + deployment.log[-1])
        return _envelope(STATUS_OK, "Deploy is done")

    def _trigger(self, query: dict[str, str], headers: dict[str, str], body: bytes) -> dict[str, Any]:
        token = query.get("token", "")
        app = next((a for a in self.apps.values() if a.webhook_token and secrets.compare_digest(a.webhook_token, token)),
                   None)
        if app is None or query.get("namespace") != "captain":
            return _envelope(STATUS_AUTH_TOKEN_INVALID, "Auth token corrupted")
        event = headers.get("x-github-event")
        if event == "push":
            try:
                ref = json.loads(body or b"{}").get("ref")
            except ValueError:
                ref = None
            if ref != f"refs/heads/{app.branch}":
                # Tag pushes land here too: CapRover never builds them.
                return _envelope(STATUS_OK, f"Ignoring push to {ref}: the app builds {app.branch}")
        # An unrecognised event builds anyway; a second trigger replaces a queued build.
        app.queued_webhook_build = True
        if self.webhook_builds == "immediate":
            self.run_queued_webhook_builds()
        return _envelope(STATUS_OK, "Build webhook has triggered")

    def _build_status(self, app: FakeApp) -> dict[str, Any]:
        building = app.building is not None
        if building:
            app.polls_left -= 1
            if app.polls_left <= 0:
                self._complete_build(app)
        return _envelope(STATUS_OK, "App build status retrieved", {
            "isAppBuilding": building, "isBuildFailed": app.build_failed,
            "logs": {"lines": list(app.log_lines[-50:]), "firstLineNumber": max(0, len(app.log_lines) - 50)}})

    # --- builds ---------------------------------------------------------------------------------

    def _build_from_branch(self, app: FakeApp) -> Deployment:
        if app.repository is None:
            raise AssertionError(f"the fake app {app.name} needs repository= for webhook builds")
        sha = subprocess.run(["git", "rev-parse", "--verify", f"refs/heads/{app.branch}^{{commit}}"],
                             cwd=app.repository, capture_output=True, check=True, text=True).stdout.strip()
        tar = subprocess.run(["git", "archive", "--format=tar", sha], cwd=app.repository, capture_output=True,
                             check=True).stdout
        return self._start_build(app, sha, "webhook", tar=tar, definition=None)

    def _start_build(self, app: FakeApp, git_hash: str | None, source: Literal["upload", "definition", "webhook"],
                     *, tar: bytes | None, definition: dict[str, Any] | None) -> Deployment:
        if app.building is not None:
            # CapRover queues builds; the fake finishes the running one first.
            self._complete_build(app)
        number = max((v.version for v in app.versions), default=-1) + 1
        app.versions.append(Version(number, git_hash, datetime.now(timezone.utc).isoformat()))
        del app.versions[:-VERSIONS_KEPT]
        deployment = Deployment(app=app.name, version=number, git_hash=git_hash, source=source, tar=tar,
                                definition=definition, ok=False, image=None, log=[])
        app.building, app.polls_left = deployment, self.build_polls
        app.build_failed = False
        app.log_lines = [f"Build started for {app.name}"]
        if self.build_polls <= 0:
            self._complete_build(app)
        return deployment

    def _complete_build(self, app: FakeApp) -> None:
        deployment = app.building
        if deployment is None:
            return
        app.building = None
        problem = self._build_problem(app, deployment)
        if problem is None and self.fail_next_builds > 0:
            self.fail_next_builds -= 1
            problem = "RUN bun test: exit code 1"
        if problem is None:
            deployment.ok, deployment.image = True, f"img-captain-{app.name}:{deployment.version}"
            self.images.add(deployment.image)
            for version in app.versions:
                if version.version == deployment.version:
                    version.image = deployment.image
            app.deployed_version = deployment.version
            deployment.log = [*app.log_lines, f"Build has finished successfully: {deployment.image}"]
        else:
            deployment.log = [*app.log_lines, f"Build has failed: {problem}"]
            app.build_failed = True
        app.log_lines = deployment.log
        self.deployments.append(deployment)

    def _build_problem(self, app: FakeApp, deployment: Deployment) -> str | None:
        if deployment.tar is not None:
            try:
                with tarfile.open(fileobj=io.BytesIO(deployment.tar)) as archive:
                    names = {m.name.removeprefix("./") for m in archive.getmembers()}
            except tarfile.TarError:
                return "the uploaded sourceFile is not a tar archive"
            if "captain-definition" in names:
                return None
            if "Dockerfile" in names:
                return None
            return "ENOENT: no captain-definition or Dockerfile at the root of the source"
        definition = deployment.definition or {}
        if definition.get("schemaVersion") != 2:
            return "captain-definition: schemaVersion must be 2"
        kinds = [k for k in ("templateId", "imageName", "dockerfilePath", "dockerfileLines") if k in definition]
        if len(kinds) != 1:
            return "captain-definition needs exactly one of templateId, imageName, dockerfilePath, dockerfileLines"
        for line in definition.get("dockerfileLines") or []:
            if line.startswith("FROM img-captain-") and line.removeprefix("FROM ").strip() not in self.images:
                return f"pull access denied for {line.removeprefix('FROM ').strip()}: no such image"
        return None


def _envelope(status: int, description: str, data: Any = None) -> dict[str, Any]:
    return {"status": status, "description": description, "data": data if data is not None else {}}


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[str(name)] = payload
        else:
            fields[str(name)] = payload.decode()
    return fields, files

