"""A fake CapRover on 127.0.0.1 that behaves like the real one where railguard depends on it.

It follows CapRover's own sources (github.com/caprover/caprover; paths below are in that
repository), and the official CLI (npm ``caprover``) runs against it in
tests/deploy/test_caprover_cli.py, so any drift from the real server shows up there. Quirks:

* Every reply is the envelope ``{status, description, data}`` with **HTTP 200 even on failure**
  (src/api/BaseApi.ts, src/api/ApiStatusCodes.ts: 100 OK, 101 deploy started, 1000 generic,
  1105 wrong password, 1106 auth token invalid, 1114 OTP required).
* No token, a bad token, **and an app token for an app that does not exist** all get 1106 "Auth
  token corrupted": ``injectUserForBuildTrigger`` (src/injection/Injector.ts) swallows the failed
  app lookup and falls through to ``injectUser``, whose ``decodeAuthToken('')`` rejects with 1106.
  With a login, a missing app is 1000 "App (x) could not be found" (AppsDataStore.getAppDefinition).
* HTTP 429 with the **plain-text** body "Another operation still in progress... please wait...",
  for non-GET requests under ``/api/v2/user/`` only, while another one runs (src/routes/user/
  UserRouter.ts, the ``threadLockNamespace`` middleware). ``busy_responses`` makes the next N such
  requests meet it. ``gateway_errors`` makes the next requests meet nginx's 502/503/504 pages, as
  while CapRover restarts.
* ``POST /api/v2/user/apps/appData/<app>`` takes a multipart form (``sourceFile`` and ``gitHash``,
  multer in src/routes/user/apps/appdata/AppDataRouter.ts) **or a JSON body**
  (``captainDefinitionContent`` as a JSON string, ``gitHash``: what the CLI's ``--imageName``
  deploy sends, ApiManager.uploadCaptainDefinitionContent in caprover-cli); exactly one of the two
  sources (src/handlers/users/apps/appdata/AppDataHandler.ts). ``?detached=1`` answers 101 at once.
* **One global build queue** (src/user/ServiceManager.ts ``scheduleDeployNewVersion``): while any
  build runs, a new one is queued, and a new request for an app that already has a queued build
  **replaces that build's source**. A version is created when a build *starts*
  (``startDeployingNewVersion`` → AppsDataStore.createNewVersion: one more than the highest,
  ``gitHash`` undefined, the last 50 kept); its ``gitHash`` and ``deployedImageName`` are written
  only when the build succeeds (AppsDataStore.setDeployedVersionAndImage). ``isAppBuilding`` is
  ``activeOrScheduledBuilds[app]``, set when scheduled and cleared by ``onBuildFinished`` — which
  starts the next queued build without setting it again, so a build that waited in the queue
  runs with ``isAppBuilding`` false.
* The commit reaches the build **only as a Docker build argument**: ImageMaker.ensureImage adds
  ``CAPROVER_GIT_COMMIT_SHA`` to the app's env vars, and DockerApi.buildImageFromDockerFile hands
  them all to the build as ``buildargs``. Nothing is injected into the running container. The fake
  works out each built image's environment from the Dockerfile's final stage
  (:func:`image_environment`): a Dockerfile without ``ARG CAPROVER_GIT_COMMIT_SHA`` +
  ``ENV ...=$CAPROVER_GIT_COMMIT_SHA`` yields an app that cannot say which commit it runs.
* Images are ``img-captain-<app>:<version>``; with a default push registry (``registry=``) they
  are ``<registryDomain>/<registryImagePrefix>/img-captain-<app>:<version>``
  (src/user/DockerRegistryHelper.ts ``retagAndPushIfDefaultPushExist``). A captain-definition
  with ``imageName`` builds nothing: the version's image is that name (ImageMaker.ensureImage).
* Build logs are a ring of 50 lines padded with empty strings, ``firstLineNumber`` starting at
  -50 and cleared when a build is scheduled and again when it starts (src/user/BuildLog.ts,
  ServiceManager.getBuildStatus, ImageMaker.ensureImage).
* Login (src/routes/login/LoginRouter.ts, src/user/Authenticator.ts ``getAuthToken``): with
  two-factor auth on (``otp_token=``) a login without ``otpToken`` gets 1114 "Enter OTP token as
  well"; a wrong code or a wrong password gets the same 1105 "Invalid credentials".
* The build webhook builds **the configured branch's head at build time** (read from a real git
  repository), ignores pushes to other branches and tag pushes, and builds anyway when the event
  is not recognised.

Usage::

    with FakeCapRover(password="pw") as captain:
        app = captain.add_app("tasks", app_token="t0ken", webhook_token="w3bhook", repository=repo)
        ... railguard talks to captain.url ...
        assert captain.deployments[-1].git_hash == sha

The running build finishes after ``build_polls`` status requests for its app (default 1), so a
client that polls sees it building once; no wall-clock time is involved. ``finish_builds()``
runs the queue to the end. A subclass that needs to act when a build ends (start the built app
with the environment its image gives it, say) overrides ``built(deployment)``.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import re
import secrets
import shlex
import subprocess
import tarfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from fakes import LoopbackFake, PlainText

STATUS_OK = 100
STATUS_OK_DEPLOY_STARTED = 101
STATUS_ERROR_GENERIC = 1000
STATUS_WRONG_PASSWORD = 1105
STATUS_AUTH_TOKEN_INVALID = 1106
STATUS_ERROR_OTP_REQUIRED = 1114
VERSIONS_KEPT = 50  # CaptainConstants.configs.maxVersionHistory
BUILD_LOG_SIZE = 50  # CaptainConstants.configs.buildLogSize
GIT_SHA_BUILD_ARG = "CAPROVER_GIT_COMMIT_SHA"  # CaptainConstants.gitShaEnvVarKey
BUSY_TEXT = "Another operation still in progress... please wait..."  # UserRouter.ts
# nginx's own error pages, which CapRover's nginx serves while the captain container restarts.
GATEWAY_PAGES = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}

Source = Literal["upload", "definition", "webhook"]


@dataclass
class RecordedCall:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    #: Form fields (multipart or JSON), and file fields as bytes (multipart only).
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
        document: dict[str, Any] = {"version": self.version, "timeStamp": self.time_stamp}
        if self.git_hash is not None:
            document["gitHash"] = self.git_hash
        if self.image:
            document["deployedImageName"] = self.image
        return document


@dataclass
class Image:
    """What a built image holds, as far as the tests need: its tree and its environment."""

    name: str
    tree: bytes | None
    environment: dict[str, str]


@dataclass
class Deployment:
    """One build CapRover ran (successful or not)."""

    app: str
    version: int
    git_hash: str | None
    source: Source
    tar: bytes | None
    definition: dict[str, Any] | None
    ok: bool
    image: str | None
    log: list[str]
    #: The environment the built image gives the app (from its Dockerfile's final stage).
    environment: dict[str, str] = field(default_factory=dict)
    #: The tree the image runs: the uploaded tar, or for ``FROM <image>`` the tree of that image.
    tree: bytes | None = None


@dataclass
class Build:
    """A scheduled build (ServiceManager's ``queuedBuilds`` entry, or the running one)."""

    app: str
    source: Source
    git_hash: str | None
    tar: bytes | None
    definition: dict[str, Any] | None
    version: int | None = None
    polls_left: int = 0


@dataclass
class FakeApp:
    name: str
    app_token: str | None = None
    webhook_token: str | None = None
    branch: str = "main"
    #: The git repository the build webhook "clones" (its branch head is read at build time).
    repository: Path | None = None
    #: The app's environment variables: CapRover passes them to the build as build args too.
    env_vars: dict[str, str] = field(default_factory=dict)
    versions: list[Version] = field(default_factory=list)
    deployed_version: int = 0
    #: ServiceManager.activeOrScheduledBuilds[app]: what GET appData reports as isAppBuilding.
    scheduled: bool = False
    build_failed: bool = False
    log_lines: list[str] = field(default_factory=lambda: [""] * BUILD_LOG_SIZE)
    first_line_number: int = -BUILD_LOG_SIZE
    queued_webhook_build: bool = False

    def clear_log(self) -> None:  # BuildLog.clear
        self.build_failed = False
        self.log_lines = [""] * BUILD_LOG_SIZE
        self.first_line_number = -BUILD_LOG_SIZE

    def log(self, line: str) -> None:  # BuildLog.log: a ring of BUILD_LOG_SIZE lines
        self.log_lines = [*self.log_lines[1:], line]
        self.first_line_number += 1

    @property
    def logged(self) -> list[str]:
        """The lines logged since the last clear (without the padding)."""
        count = min(BUILD_LOG_SIZE, self.first_line_number + BUILD_LOG_SIZE)
        return self.log_lines[BUILD_LOG_SIZE - count:] if count > 0 else []


class FakeCapRover(LoopbackFake):
    thread_name = "fake-caprover"

    def __init__(self, *, password: str = "captain-password", build_polls: int = 1,
                 webhook_builds: Literal["immediate", "queued"] = "immediate", otp_token: str | None = None,
                 registry: tuple[str, str] | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.password = password
        self.build_polls = build_polls
        self.webhook_builds = webhook_builds
        #: Two-factor auth: the code a login must carry (None: two-factor auth is off).
        self.otp_token = otp_token
        #: The default push registry as (registryDomain, registryImagePrefix), or None.
        self.registry = registry
        self.host, self.port = host, port
        self.apps: dict[str, FakeApp] = {}
        self.calls: list[RecordedCall] = []
        self.deployments: list[Deployment] = []
        self.images: dict[str, Image] = {}
        #: Quirks: the next N non-GET /api/v2/user/ requests get HTTP 429; the next requests get
        #: these gateway statuses (one each); the next N builds fail.
        self.busy_responses = 0
        self.gateway_errors: list[int] = []
        self.fail_next_builds = 0
        self.running: Build | None = None
        self.queue: list[Build] = []
        self._auth_tokens: set[str] = set()
        self._lock = threading.RLock()

    # --- setup and inspection -------------------------------------------------------------------

    def add_app(self, name: str, *, app_token: str | None = None, webhook_token: str | None = None,
                branch: str = "main", repository: Path | None = None,
                env_vars: dict[str, str] | None = None) -> FakeApp:
        with self._lock:
            app = FakeApp(name=name, app_token=app_token, webhook_token=webhook_token, branch=branch,
                          repository=repository, env_vars=dict(env_vars or {}))
            self.apps[name] = app
            return app

    def calls_to(self, path_prefix: str, method: str | None = None) -> list[RecordedCall]:
        return [c for c in self.calls if c.path.startswith(path_prefix) and (method is None or c.method == method)]

    def image_name(self, app: str, version: int) -> str:
        name = f"img-captain-{app}:{version}"
        if self.registry is not None:
            domain, prefix = self.registry
            name = f"{domain}/{prefix}/{name}"
        return name

    def finish_builds(self) -> None:
        """Run the running build and every queued one to the end now."""
        with self._lock:
            while self.running is not None:
                self._complete_build(self.running)

    def run_queued_webhook_builds(self) -> list[Deployment]:
        """Run the builds the webhook queued (``webhook_builds="queued"``), reading each branch head now."""
        with self._lock:
            before = len(self.deployments)
            for app in self.apps.values():
                if app.queued_webhook_build:
                    app.queued_webhook_build = False
                    self._schedule(app, Build(app.name, "webhook", None, None, None))
            self.finish_builds()
            return [d for d in self.deployments[before:] if d.source == "webhook"]

    # --- request handling (called from the server's threads) ------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, Any] | PlainText]:
        with self._lock:
            split = urllib.parse.urlsplit(raw_path)
            query = dict(urllib.parse.parse_qsl(split.query))
            call = RecordedCall(method=method, path=split.path, query=query, headers=headers, body=body)
            self.calls.append(call)
            content_type = headers.get("content-type", "")
            if content_type.startswith("multipart/form-data"):
                call.fields, call.files = _parse_multipart(content_type, body)
            elif content_type.startswith("application/json") and split.path.startswith("/api/v2/user/apps/appData/"):
                call.fields = _json_fields(body)
            reply: dict[str, Any] | PlainText
            if self.gateway_errors:
                status = self.gateway_errors.pop(0)
                reply = PlainText(f"<html><head><title>{status} {GATEWAY_PAGES[status]}</title></head>"
                                  f"<body><center><h1>{status} {GATEWAY_PAGES[status]}</h1></center>"
                                  "<hr><center>nginx</center></body></html>\n")
            elif self.busy_responses > 0 and method != "GET" and split.path.startswith("/api/v2/user/"):
                self.busy_responses -= 1
                status, reply = 429, PlainText(BUSY_TEXT)
            else:
                status, reply = 200, self._route(method, split.path, query, headers, body, call)
            call.http_status = status
            call.envelope = reply if isinstance(reply, dict) else None
            return status, reply

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
               call: RecordedCall) -> dict[str, Any]:
        if method == "POST" and path.rstrip("/") == "/api/v2/login":
            return self._login(body)
        if method == "POST" and path.rstrip("/") == "/api/v2/user/apps/webhooks/triggerbuild":
            return self._trigger(query, headers, body)
        if path.startswith("/api/v2/user/apps/appData/"):
            name = urllib.parse.unquote(path.removeprefix("/api/v2/user/apps/appData/").strip("/"))
            app = self.apps.get(name)
            if method == "POST" and not headers.get("x-captain-auth"):
                # injectUserForBuildTrigger: a token that matches no app (a wrong app name
                # included) falls through to injectUser, which answers 1106.
                token = headers.get("x-captain-app-token") or ""
                if app is None or not app.app_token or not secrets.compare_digest(token, app.app_token):
                    return _envelope(STATUS_AUTH_TOKEN_INVALID, "Auth token corrupted")
            else:
                denied = self._authorise(headers)
                if denied:
                    return denied
                if app is None:
                    return _envelope(STATUS_ERROR_GENERIC,
                                     f"App ({name}) could not be found. Make sure that you have created the app.")
            if method == "POST":
                return self._deploy(app, query, call)
            return self._build_status(app)
        if method == "GET" and path.rstrip("/") == "/api/v2/user/apps/appDefinitions":
            denied = self._authorise(headers)
            if denied:
                return denied
            return _envelope(STATUS_OK, "App definitions are retrieved.", {
                "appDefinitions": [{"appName": a.name, "deployedVersion": a.deployed_version,
                                    "hasDefaultSubDomainSsl": False, "hasPersistentData": True,
                                    "envVars": [{"key": k, "value": v} for k, v in a.env_vars.items()],
                                    "versions": [v.as_json() for v in a.versions]} for a in self.apps.values()],
                "rootDomain": "captain.test", "defaultNginxConfig": ""})
        denied = self._authorise(headers)
        return denied or _envelope(STATUS_ERROR_GENERIC, f"Unknown route {method} {path}")

    def _login(self, body: bytes) -> dict[str, Any]:
        try:
            document = json.loads(body or b"{}")
        except ValueError:
            document = {}
        password = str(document.get("password") or "")
        otp = str(document.get("otpToken") or "")
        if not password:
            return _envelope(STATUS_ERROR_GENERIC, "password is empty.")
        if self.otp_token is not None and not otp:
            return _envelope(STATUS_ERROR_OTP_REQUIRED, "Enter OTP token as well")
        # Authenticator.getAuthToken: a wrong code and a wrong password read the same on purpose.
        otp_ok = self.otp_token is None or secrets.compare_digest(otp, self.otp_token)
        if not otp_ok or not secrets.compare_digest(password, self.password):
            return _envelope(STATUS_WRONG_PASSWORD, "Invalid credentials")
        token = secrets.token_hex(16)
        self._auth_tokens.add(token)
        return _envelope(STATUS_OK, "Login succeeded", {"token": token})

    def _authorise(self, headers: dict[str, str]) -> dict[str, Any] | None:
        # injectUser: decodeAuthToken of a missing or bad x-captain-auth rejects with 1106.
        auth = headers.get("x-captain-auth") or ""
        if auth and auth in self._auth_tokens:
            return None
        return _envelope(STATUS_AUTH_TOKEN_INVALID, "Auth token corrupted")

    def _deploy(self, app: FakeApp, query: dict[str, str], call: RecordedCall) -> dict[str, Any]:
        git_hash = call.fields.get("gitHash") or None
        tar = call.files.get("sourceFile")
        definition_text = call.fields.get("captainDefinitionContent") or ""
        if (tar is not None) == bool(definition_text):
            return _envelope(STATUS_ERROR_GENERIC, "Either uploadedTarPathSource or captainDefinitionContent "
                                                   "should be provided, but not both.")
        definition = None
        if definition_text:
            try:
                definition = json.loads(definition_text)
            except ValueError:
                definition = {"unparsable": definition_text}
        build = Build(app.name, "upload" if tar is not None else "definition", git_hash, tar, definition)
        self._schedule(app, build)
        if query.get("detached"):
            return _envelope(STATUS_OK_DEPLOY_STARTED, "Deploy is started")
        while self.running is not None and (self.running is build or build in self.queue):
            self._complete_build(self.running)
        deployment = next((d for d in reversed(self.deployments) if d.app == app.name), None)
        if deployment is None or not deployment.ok:
            return _envelope(STATUS_ERROR_GENERIC, deployment.log[-1] if deployment else "Build has failed!")
        return _envelope(STATUS_OK, "Deploy is done")

    def _trigger(self, query: dict[str, str], headers: dict[str, str], body: bytes) -> dict[str, Any]:
        token = query.get("token", "")
        app = next((a for a in self.apps.values()
                    if a.webhook_token and secrets.compare_digest(a.webhook_token, token)), None)
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
        # An unrecognised event builds anyway.
        if self.webhook_builds == "immediate":
            self._schedule(app, Build(app.name, "webhook", None, None, None))
            self.finish_builds()
        else:
            app.queued_webhook_build = True
        return _envelope(STATUS_OK, "Build webhook has triggered")

    def _build_status(self, app: FakeApp) -> dict[str, Any]:
        # ServiceManager.getBuildStatus; the running build of this app advances by one poll.
        reply = _envelope(STATUS_OK, "App build status retrieved", {
            "isAppBuilding": app.scheduled, "isBuildFailed": app.build_failed,
            "logs": {"lines": list(app.log_lines), "firstLineNumber": app.first_line_number}})
        if self.running is not None and self.running.app == app.name:
            self.running.polls_left -= 1
            if self.running.polls_left <= 0:
                self._complete_build(self.running)
        return reply

    # --- builds (ServiceManager and ImageMaker) --------------------------------------------------

    def _schedule(self, app: FakeApp, build: Build) -> None:
        """ServiceManager.scheduleDeployNewVersion."""
        busy = self.running is not None
        app.scheduled = True
        app.clear_log()
        if busy:
            queued = next((b for b in self.queue if b.app == app.name), None)
            if queued is not None:
                app.log(f"A build for {app.name} was queued, it's now being replaced with a new build...")
                queued.source, queued.git_hash, queued.tar, queued.definition = (
                    build.source, build.git_hash, build.tar, build.definition)
                return
            assert self.running is not None
            app.log(f"An active build ({self.running.app}) is in progress. This build is queued...")
            self.queue.append(build)
            return
        self._start(build)

    def _start(self, build: Build) -> None:
        """ServiceManager.startDeployingNewVersion: the version is created now."""
        app = self.apps[build.app]
        if build.source == "webhook":
            build.git_hash, build.tar = self._branch_head(app)
        number = max((v.version for v in app.versions), default=-1) + 1
        del app.versions[:-(VERSIONS_KEPT - 1)]
        app.versions.append(Version(number, None, datetime.now(timezone.utc).isoformat()))
        build.version, build.polls_left = number, self.build_polls
        app.clear_log()
        app.log(f"------------------------- {datetime.now(timezone.utc)}")
        app.log(f"Build started for {app.name}")
        self.running = build
        if self.build_polls <= 0:
            self._complete_build(build)

    def _complete_build(self, build: Build) -> None:
        app = self.apps[build.app]
        assert build.version is not None
        problem, image = self._build(app, build)
        if problem is None and self.fail_next_builds > 0:
            self.fail_next_builds -= 1
            problem = "RUN bun test: exit code 1"
        deployment = Deployment(app=app.name, version=build.version, git_hash=build.git_hash, source=build.source,
                                tar=build.tar, definition=build.definition, ok=False, image=None, log=[])
        if problem is None:
            assert image is not None
            app.log("Build has finished successfully!")
            deployment.ok, deployment.image = True, image.name
            deployment.environment, deployment.tree = dict(image.environment), image.tree
            for version in app.versions:
                if version.version == build.version:
                    version.image, version.git_hash = image.name, build.git_hash or ""
            app.deployed_version = build.version
        else:
            app.log("Build has failed!")
            app.log("----------------------")  # BuildLog.onBuildFailed
            app.log("Deploy failed!")
            app.log(problem)
            app.build_failed = True
        deployment.log = app.logged
        self.deployments.append(deployment)
        self.built(deployment)
        # onBuildFinished: clears isAppBuilding, then starts the next queued build without setting it.
        app.scheduled = False
        self.running = None
        if self.queue:
            self._start(self.queue.pop(0))

    def built(self, deployment: Deployment) -> None:
        """Called once each build has ended (``deployment.ok`` says how); a subclass acts on it."""

    def _branch_head(self, app: FakeApp) -> tuple[str, bytes]:
        if app.repository is None:
            raise AssertionError(f"the fake app {app.name} needs repository= for webhook builds")
        sha = subprocess.run(["git", "rev-parse", "--verify", f"refs/heads/{app.branch}^{{commit}}"],
                             cwd=app.repository, capture_output=True, check=True, text=True).stdout.strip()
        tar = subprocess.run(["git", "archive", "--format=tar", sha], cwd=app.repository, capture_output=True,
                             check=True).stdout
        return sha, tar

    def _build(self, app: FakeApp, build: Build) -> tuple[str | None, Image | None]:
        """ImageMaker.ensureImage: (the problem, None) or (None, the image built)."""
        assert build.version is not None
        definition = build.definition
        files: dict[str, bytes] = {}
        if build.tar is not None:
            try:
                files = _tar_files(build.tar)
            except tarfile.TarError:
                return "the uploaded sourceFile is not a tar archive", None
            if "captain-definition" in files:
                try:
                    definition = json.loads(files["captain-definition"])
                except ValueError:
                    return "captain-definition is not valid JSON", None
            elif "Dockerfile" in files:
                definition = {"schemaVersion": 2, "dockerfilePath": "./Dockerfile"}
            else:
                return "ENOENT: no captain-definition or Dockerfile at the root of the source", None
        definition = definition or {}
        if not isinstance(definition, dict) or definition.get("schemaVersion") != 2:
            return "captain-definition: schemaVersion must be 2", None
        kinds = [k for k in ("templateId", "imageName", "dockerfilePath", "dockerfileLines") if k in definition]
        if len(kinds) != 1:
            return ("captain-definition needs exactly one of templateId, imageName, dockerfilePath, "
                    "dockerfileLines"), None
        if "imageName" in definition:
            # No build: the version runs the named image as it is.
            name = str(definition["imageName"])
            known = self.images.get(name)
            return None, Image(name, known.tree if known else None, dict(known.environment) if known else {})
        if "dockerfileLines" in definition:
            dockerfile = "\n".join(str(line) for line in definition["dockerfileLines"])
        elif "dockerfilePath" in definition:
            relative = str(definition["dockerfilePath"]).removeprefix("./")
            if relative not in files:
                return f"ENOENT: no such file {definition['dockerfilePath']}", None
            dockerfile = files[relative].decode(errors="replace")
        else:
            return "templateId is not supported by this fake", None
        base = _final_base(dockerfile)
        inherited = Image(base or "scratch", None, {})
        if base and base.split("/")[-1].startswith("img-captain-"):
            if base not in self.images:
                return f"pull access denied for {base}: no such image", None
            inherited = self.images[base]
        # ImageMaker.ensureImage + DockerApi.buildImageFromDockerFile: the app's env vars and the
        # commit are build args, nothing more.
        build_args = dict(app.env_vars)
        if build.git_hash and GIT_SHA_BUILD_ARG not in build_args:
            build_args[GIT_SHA_BUILD_ARG] = build.git_hash
        environment = {**inherited.environment, **image_environment(dockerfile, build_args)}
        image = Image(self.image_name(app.name, build.version),
                      build.tar if build.tar is not None else inherited.tree, environment)
        self.images[image.name] = image
        return None, image


# --- a little of what `docker build` does with a Dockerfile's final stage -----------------------

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\r?\n", " ", dockerfile)
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _final_base(dockerfile: str) -> str | None:
    base = None
    for keyword, rest in _instructions(dockerfile):
        if keyword == "FROM":
            base = rest.split()[0] if rest else None
    return base


def image_environment(dockerfile: str, build_args: dict[str, str]) -> dict[str, str]:
    """The ``ENV`` a Dockerfile's final stage sets, given these build args.

    Docker's rules that matter here: a build arg is visible in a stage only after that stage
    declares it with ``ARG`` (an ``ARG`` goes out of scope at the next ``FROM``); an undeclared
    build arg is ignored; ``$NAME`` / ``${NAME}`` expand to ARG and earlier ENV values.
    """
    scope: dict[str, str] = {}
    environment: dict[str, str] = {}
    for keyword, rest in _instructions(dockerfile):
        if keyword == "FROM":
            scope, environment = {}, {}
        elif keyword == "ARG":
            name, has_default, default = rest.partition("=")
            name = name.strip()
            if name in build_args:
                scope[name] = build_args[name]
            elif has_default:
                scope[name] = _expand(default.strip().strip('"'), {**scope, **environment})
            else:
                scope.setdefault(name, "")
        elif keyword == "ENV":
            for word in shlex.split(rest):
                key, has_value, value = word.partition("=")
                if has_value:
                    environment[key] = _expand(value, {**scope, **environment})
    return environment


def _expand(value: str, known: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: known.get(m.group(1) or m.group(2), ""), value)


def _tar_files(tar: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for member in archive.getmembers():
            if member.isfile():
                extracted = archive.extractfile(member)
                files[member.name.removeprefix("./")] = extracted.read() if extracted else b""
    return files


def _envelope(status: int, description: str, data: Any = None) -> dict[str, Any]:
    return {"status": status, "description": description, "data": data if data is not None else {}}


def _json_fields(body: bytes) -> dict[str, str]:
    """express.json() then ``${req.body.x || ''}`` (AppDataRouter.ts): every field as a string."""
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in document.items() if v not in (None, "")}


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
