"""The CapRover backend: a small HTTP client over CapRover's ``/api/v2`` and the
:class:`CapRoverDeployer` that the deploy, rollback and release flows use.

Facts this module is built on (docs/deploy.md; paths are in github.com/caprover/caprover):

* Every reply is an envelope ``{status, description, data}``, mostly with HTTP 200 **even on
  failure** (src/api/ApiStatusCodes.ts): 100 is OK, 101 "deploy started", anything else is an
  error. 1106 "Auth token corrupted" answers a missing or bad token **and an app token sent for
  an app name that does not exist** (src/injection/Injector.ts ``injectUserForBuildTrigger``
  falls through to ``injectUser``), so that error names both possibilities.
* HTTP 429 with the **plain-text** body "Another operation still in progress" answers a non-GET
  call under ``/api/v2/user/`` while another one holds the lock (src/routes/user/UserRouter.ts);
  nginx answers 502/503/504 while CapRover restarts. All four are retried with a bounded,
  doubling backoff (:class:`RetryPolicy`, that is :class:`railguard.http.Backoff`); the sleeper
  is a parameter. A failure to connect is not retried: the deploy fails at once with a hint.
* An exact commit is deployed with ``POST /api/v2/user/apps/appData/<app>?detached=1`` as a
  multipart form: ``sourceFile`` (a tar of the tree) and ``gitHash``. The app token
  (``x-captain-app-token``) is accepted on this route only. CapRover hands the commit to the
  image build **only** as the build arg ``CAPROVER_GIT_COMMIT_SHA`` (src/user/ImageMaker.ts
  ``ensureImage``, src/docker/DockerApi.ts ``buildImageFromDockerFile``).
* Build status (``GET appData/<app>``) and the version list (``GET appDefinitions``) need a
  login (``POST /api/v2/login`` → ``x-captain-auth``). With two-factor auth the login carries
  ``otpToken`` (read from ``$CAPROVER_OTP_TOKEN``, as the official CLI does); 1114 asks for it,
  a wrong code is the same 1105 "Invalid credentials" as a wrong password, 1113 is the 30 s
  back-off after wrong passwords (src/routes/login/LoginRouter.ts, src/user/Authenticator.ts).
* One global build queue; a new request for an app **replaces the source of its queued build**
  (src/user/ServiceManager.ts ``scheduleDeployNewVersion``). A version gets its ``gitHash`` and
  ``deployedImageName`` only when its build succeeds (AppsDataStore.setDeployedVersionAndImage).
  So login mode checks that the version that went live carries the commit railguard uploaded,
  and reports :class:`DeploySuperseded` otherwise.
* Rollback has no endpoint: deploy ``captainDefinitionContent`` = ``FROM <previous image>``.
  Image names are read from the version list, never guessed: with a push registry they are
  ``<registryDomain>/<prefix>/img-captain-<app>:<n>`` (src/user/DockerRegistryHelper.ts
  ``retagAndPushIfDefaultPushExist``).

HTTP goes through :func:`railguard.http.request` (docs/http.md): the environment's proxy, no
redirect followed (a token must not follow a ``Location``), ``timeout`` for connecting and for
each read. The multipart upload is streamed with its Content-Length: the tar is sent from the
``bytes`` given (no copy) or chunk by chunk from a file. Secrets and upstream bodies never reach a message: errors name the route, never the URL with
its query string; a failure is summarised as HTTP status, CapRover status code and at most
:data:`DESCRIPTION_LIMIT` characters of its description, passed through
:func:`railguard.secrets.redact`; a body that is not CapRover's envelope is never shown.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from railguard import http
from railguard.deploy.deployer import AppVersion, AppVersions, DeployOutcome, VersionsUnavailable
from railguard.errors import Busy, ConfigError, ExitCode, NotFound, RailguardError
from railguard.secrets import Secret, redact

STATUS_OK = 100
STATUS_OK_DEPLOY_STARTED = 101
STATUS_OK_PARTIALLY = 102
STATUS_WRONG_PASSWORD = 1105
STATUS_AUTH_TOKEN_INVALID = 1106
STATUS_NOT_AUTHORIZED = 1102
STATUS_PASSWORD_BACK_OFF = 1113
STATUS_OTP_REQUIRED = 1114
#: HTTP statuses worth retrying: CapRover's lock (429), nginx while CapRover restarts (502-504).
RETRIED_HTTP = {429: "another operation in progress", 502: "bad gateway", 503: "service unavailable",
                504: "gateway timeout"}
#: How much of CapRover's description an error message may quote.
DESCRIPTION_LIMIT = 160
_SUCCESS = {STATUS_OK, STATUS_OK_DEPLOY_STARTED, STATUS_OK_PARTIALLY}
# CapRover's words for a missing app: "App (tasks) could not be found. Make sure that you have created the app."
_APP_MISSING = re.compile(r"could not be found|not found", re.IGNORECASE)


class CapRoverError(RailguardError):
    """CapRover answered, and the answer was a failure."""

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class CapRoverUnreachable(CapRoverError, http.Unreachable):
    """No answer from CapRover (refused, unknown host, timeout, TLS), or only 502-504 after the retries."""


class CapRoverRejectedCredentials(ConfigError):
    """A bad app token, password or webhook token is a configuration problem (exit 3)."""


class CapRoverAppNotFound(NotFound):
    pass


class CapRoverBusy(Busy):
    pass


class DeploySuperseded(RailguardError):
    """Another deploy replaced railguard's before it went live (CapRover's queue replacement)."""

    exit_code = ExitCode.SUPERSEDED

    def __init__(self, message: str, *, hint: str | None = None, version: int | None = None,
                 image: str | None = None, live_git_hash: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.version, self.image, self.live_git_hash = version, image, live_git_hash


class BuildFailed(CapRoverError):
    def __init__(self, message: str, *, hint: str | None = None, log_tail: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail or []


@dataclass
class Envelope:
    status: int
    description: str
    data: Any


@dataclass(frozen=True)
class RetryPolicy(http.Backoff):
    """How HTTP 429/502/503/504 are retried: ``attempts`` retries, delays doubling from ``first``
    up to ``cap`` (with the defaults at most 1+2+4+8+16 = 31 s in all)."""

    attempts: int = 5


@dataclass
class BuildStatus:
    building: bool
    failed: bool
    log_lines: list[str]


@dataclass
class CapRoverClient:
    base_url: str
    app_token: Secret | None = None
    password: Secret | None = None
    #: The two-factor code for the login ($CAPROVER_OTP_TOKEN, as the official CLI reads it).
    otp_token: Secret | None = None
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    #: Names of the variables the secrets came from, for hints ("Check $CAPROVER_APP_TOKEN").
    secret_names: Mapping[str, str] = field(default_factory=dict)
    _auth_token: Secret | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.base_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ConfigError(f"deploy.caprover_url {self.base_url!r} is not an http(s) URL",
                              hint="Use CapRover's base URL, e.g. https://captain.example.com")
        self.base_url = self.base_url.rstrip("/")

    # --- the routes -------------------------------------------------------------------------

    def login(self) -> None:
        if self.password is None:
            raise ConfigError(f"login mode needs the CapRover password in ${self._name('password')}",
                              hint=f"Export {self._name('password')} (or {self._name('password')}_FILE)")
        body = {"password": self.password.reveal()}
        if self.otp_token is not None:
            body["otpToken"] = self.otp_token.reveal()
        envelope = self._call("POST", "/api/v2/login", json_body=body, auth=None)
        token = (envelope.data or {}).get("token") if isinstance(envelope.data, dict) else None
        if not token:
            raise CapRoverError("CapRover's login reply carried no token")
        self._auth_token = Secret(token)

    def deploy_tar(self, app: str, tar: bytes | Path, git_hash: str, *, use_app_token: bool) -> Envelope:
        """Upload ``tar`` (its bytes, or a file read chunk by chunk) as the source of ``git_hash``."""
        body, content_type = http.multipart({"gitHash": git_hash},
                                            {"sourceFile": ("source.tar", "application/x-tar", tar)})
        return self._call("POST", f"/api/v2/user/apps/appData/{_quote(app)}", query={"detached": "1"},
                          body=body, content_type=content_type, auth="app-token" if use_app_token else "login",
                          app=app)

    def deploy_definition(self, app: str, definition: Mapping[str, Any], git_hash: str | None, *,
                          use_app_token: bool) -> Envelope:
        fields = {"captainDefinitionContent": json.dumps(definition)}
        if git_hash:
            fields["gitHash"] = git_hash
        body, content_type = http.multipart(fields, {})
        return self._call("POST", f"/api/v2/user/apps/appData/{_quote(app)}", query={"detached": "1"},
                          body=body, content_type=content_type, auth="app-token" if use_app_token else "login",
                          app=app)

    def build_status(self, app: str) -> BuildStatus:
        data = self._call("GET", f"/api/v2/user/apps/appData/{_quote(app)}", auth="login", app=app).data or {}
        logs = data.get("logs") or {}
        # BuildLog.ts pads its 50-line ring with empty lines until that many were logged.
        lines = [str(line) for line in logs.get("lines") or []]
        while lines and not lines[0]:
            lines.pop(0)
        secrets = self._secrets()
        return BuildStatus(building=bool(data.get("isAppBuilding")), failed=bool(data.get("isBuildFailed")),
                           log_lines=[redact(line, secrets) for line in lines])

    def app_versions(self, app: str) -> AppVersions:
        data = self._call("GET", "/api/v2/user/apps/appDefinitions", auth="login").data or {}
        for definition in data.get("appDefinitions") or []:
            if definition.get("appName") == app:
                return AppVersions(
                    deployed_version=definition.get("deployedVersion"),
                    versions=[AppVersion(version=int(v["version"]), image=v.get("deployedImageName"),
                                         git_hash=v.get("gitHash"), time=v.get("timeStamp"))
                              for v in definition.get("versions") or []])
        raise _app_not_found(app)

    def trigger_webhook(self, token: Secret, body: bytes = b"{}", headers: Mapping[str, str] | None = None) -> Envelope:
        """The legacy build trigger. CapRover builds the branch head at build time, not a SHA."""
        return self._call("POST", "/api/v2/user/apps/webhooks/triggerbuild",
                          query={"namespace": "captain", "token": token.reveal()}, body=body,
                          content_type="application/json", extra_headers=headers, auth=None,
                          token_name=self._name("webhook"))

    # --- transport ----------------------------------------------------------------------------

    def _name(self, which: str) -> str:
        defaults = {"app-token": "CAPROVER_APP_TOKEN", "password": "CAPROVER_PASSWORD",
                    "webhook": "CAPROVER_WEBHOOK_TOKEN", "otp": "CAPROVER_OTP_TOKEN"}
        return self.secret_names.get(which, defaults[which])

    def _secrets(self) -> list[Secret | None]:
        return [self.app_token, self.password, self.otp_token, self._auth_token]

    def _call(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
              json_body: Any = None, body: bytes | http.Stream | None = None, content_type: str | None = None,
              extra_headers: Mapping[str, str] | None = None, auth: str | None,
              app: str | None = None, token_name: str | None = None) -> Envelope:
        headers = {"Accept": "application/json", "x-namespace": "captain", "User-Agent": "railguard"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(extra_headers or {})
        if auth == "app-token":
            if self.app_token is None:
                raise ConfigError(f"the CapRover app token is not set (${self._name('app-token')})",
                                  hint=f"Export {self._name('app-token')} (or {self._name('app-token')}_FILE), "
                                       "or use deploy.mode = \"login\"")
            headers["x-captain-app-token"] = self.app_token.reveal()
        elif auth == "login":
            if self._auth_token is None:
                self.login()
            assert self._auth_token is not None
            headers["x-captain-auth"] = self._auth_token.reveal()
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        extra_secrets = [query.get("token")] if query else []
        envelope = self._send_with_retries(method, url, path, body, headers, extra_secrets)
        if envelope.status in _SUCCESS:
            return envelope
        description = _summary(envelope.description, [*self._secrets(), *extra_secrets])
        if envelope.status == STATUS_OTP_REQUIRED:
            raise CapRoverRejectedCredentials(
                "CapRover asks for a two-factor code (status 1114) and none was given",
                hint=f"Export {self._name('otp')} with the current code from your authenticator app, then run "
                     "the command at once (a code is valid for about 30 s); or deploy with an app token")
        if envelope.status == STATUS_PASSWORD_BACK_OFF:
            raise CapRoverRejectedCredentials(
                "CapRover refuses logins for 30 s after a wrong password (status 1113)",
                hint=f"Wait 30 s; check ${self._name('password')} first, or the next login fails again")
        if envelope.status in {STATUS_AUTH_TOKEN_INVALID, STATUS_NOT_AUTHORIZED, STATUS_WRONG_PASSWORD}:
            raise self._rejected(auth, token_name, envelope.status, app)
        if app is not None and _APP_MISSING.search(description):
            raise _app_not_found(app)
        raise CapRoverError(f"CapRover refused {method} {path} (status {envelope.status}): {description}",
                            hint="See the app's log in the CapRover dashboard", status=envelope.status)

    def _rejected(self, auth: str | None, token_name: str | None, status: int,
                  app: str | None) -> CapRoverRejectedCredentials:
        if auth == "app-token":
            # Injector.ts: an app token for an app name that does not exist also ends in 1106.
            variable = self._name("app-token")
            return CapRoverRejectedCredentials(
                f"CapRover rejected the app token for app {app!r} (status {status}): either the token is "
                f"wrong or CapRover has no app named {app!r}",
                hint=f"Check deploy.caprover_app against the app names in the dashboard, and ${variable}: copy it "
                     "again from that app's Deployment tab (App Token)")
        if auth is None and status == STATUS_WRONG_PASSWORD and self.otp_token is not None:
            variable = self._name("password")
            return CapRoverRejectedCredentials(
                f"CapRover rejected the password or the two-factor code (status {status})",
                hint=f"Check ${variable}, and export a fresh {self._name('otp')} (a code is valid for about 30 s)")
        if auth == "login" or status == STATUS_WRONG_PASSWORD:
            variable, what = self._name("password"), "the password (or the login it gave)"
            where = "it is the password of the CapRover dashboard"
        else:
            variable, what = token_name or self._name("webhook"), "the webhook token"
            where = "copy the token= part of the webhook URL from the app's Deployment tab"
        return CapRoverRejectedCredentials(f"CapRover rejected {what} (status {status})",
                                           hint=f"Check ${variable}: {where}")

    def _send_with_retries(self, method: str, url: str, path: str, body: bytes | http.Stream | None,
                           headers: dict[str, str], extra_secrets: list[str | None]) -> Envelope:
        where = self.base_url
        reply = http.request(
            method, url, service="CapRover", where=where, timeout=self.timeout, proxy="environment",
            headers=headers, body=body, retry=self.retry, retry_statuses=RETRIED_HTTP, sleep=self.sleep,
            error=CapRoverUnreachable,
            hint=f"Check deploy.caprover_url and that CapRover is up (curl -sS {where}/api/v2/login)",
            hints={"timeout": "Raise deploy.request_timeout, or check CapRover's load"})
        if reply.status not in RETRIED_HTTP:
            return _parse_envelope(reply.status, reply.body, method, path)
        retries = reply.attempts - 1
        if reply.status == 429:
            raise CapRoverBusy(f"CapRover stayed busy (HTTP 429, another operation in progress) after "
                               f"{retries} retries of {method} {path}",
                               hint="Wait for the running build to finish, then try again")
        raise CapRoverUnreachable(f"CapRover answered {method} {path} with HTTP {reply.status} "
                                  f"({RETRIED_HTTP[reply.status]}) {reply.attempts} times",
                                  hint="CapRover or its nginx is restarting or down: check `docker service ls` "
                                       "on the server, then try again")


def _summary(description: str, secrets: list[Secret | str | None]) -> str:
    """CapRover's description for a message: redacted, one line, at most DESCRIPTION_LIMIT characters."""
    line = " ".join(redact(description, secrets).split())
    if len(line) > DESCRIPTION_LIMIT:
        line = line[:DESCRIPTION_LIMIT - 3].rstrip() + "..."
    return line or "no description"


def _parse_envelope(http_status: int, payload: bytes, method: str, path: str) -> Envelope:
    # The body of a reply that is not the envelope (a proxy's page, a stack trace) is never shown.
    try:
        document = json.loads(payload)
        status = int(document["status"])
    except (ValueError, TypeError, KeyError):
        if http_status == 404:
            raise CapRoverError(f"{method} {path}: HTTP 404, no such route",
                                hint="Check deploy.caprover_url points at CapRover (https://captain.<root>)") from None
        raise CapRoverError(f"{method} {path}: HTTP {http_status} without CapRover's JSON envelope",
                            hint="Check deploy.caprover_url points at CapRover (https://captain.<root>)") from None
    return Envelope(status=status, description=str(document.get("description") or ""), data=document.get("data"))


def _app_not_found(app: str) -> CapRoverAppNotFound:
    return CapRoverAppNotFound(f"CapRover has no app named {app!r}",
                               hint="Check deploy.caprover_app (the name shown in the CapRover dashboard)")


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


@dataclass
class CapRoverDeployer:
    """A :class:`~railguard.deploy.deployer.Deployer` for one CapRover app.

    ``app-token`` mode can only start a build: CapRover's detached reply carries no version,
    and the build status needs a login, so the outcome is ``accepted``. ``login`` mode waits
    for the build, reports ``ok`` or raises :class:`BuildFailed` with the log's tail, and reads
    the version and image CapRover gave it. Because CapRover replaces a queued build's source
    with the next request for the same app (a dashboard, webhook or CLI deploy in between), the
    version that goes live must carry the ``gitHash`` railguard uploaded; if it does not,
    :class:`DeploySuperseded` says what went live instead.
    """

    client: CapRoverClient
    app: str
    mode: str = "app-token"
    build_timeout: float = 900.0
    poll_interval: float = 3.0
    monotonic: Callable[[], float] = time.monotonic

    @property
    def observes_builds(self) -> bool:
        return self.mode == "login"

    def deploy_source(self, tar: bytes, git_hash: str) -> DeployOutcome:
        before = self._newest_version()
        self.client.deploy_tar(self.app, tar, git_hash, use_app_token=self.mode == "app-token")
        return self._outcome(before, git_hash)

    def deploy_image(self, image: str, git_hash: str | None) -> DeployOutcome:
        before = self._newest_version()
        definition = {"schemaVersion": 2, "dockerfileLines": [f"FROM {image}"]}
        self.client.deploy_definition(self.app, definition, git_hash, use_app_token=self.mode == "app-token")
        return self._outcome(before, git_hash)

    def trigger_branch_build(self, branch: str, expected_commit: str, webhook_token: Secret) -> DeployOutcome:
        # X-GitHub-Event: push makes CapRover check the branch; an unrecognised event builds anyway.
        body = json.dumps({"ref": f"refs/heads/{branch}", "after": expected_commit}).encode()
        self.client.trigger_webhook(webhook_token, body, headers={"X-GitHub-Event": "push"})
        return DeployOutcome(result="accepted")

    def versions(self) -> AppVersions:
        if self.mode != "login":
            raise VersionsUnavailable("CapRover shows its version list only after a login, not to an app token",
                                      hint='Set deploy.mode = "login" and export the password to see it')
        return self.client.app_versions(self.app)

    def _newest_version(self) -> int | None:
        if self.mode != "login":
            return None
        versions = self.client.app_versions(self.app).versions
        return max((v.version for v in versions), default=-1)

    def _outcome(self, before: int | None, git_hash: str | None) -> DeployOutcome:
        if self.mode != "login":
            return DeployOutcome(result="accepted")
        assert before is not None
        deadline = self.monotonic() + self.build_timeout
        while True:
            status = self.client.build_status(self.app)
            if not status.building:
                outcome = self._judge(self.client.app_versions(self.app), before, git_hash, status)
                if outcome is not None:
                    return outcome
            if self.monotonic() >= deadline:
                raise CapRoverError(f"CapRover's build of {self.app} did not finish within "
                                    f"{self.build_timeout:.0f}s",
                                    hint="Watch it in the dashboard; raise deploy.build_timeout for slow builds")
            self.client.sleep(self.poll_interval)

    def _judge(self, listing: AppVersions, before: int, git_hash: str | None,
               status: BuildStatus) -> DeployOutcome | None:
        """The outcome once CapRover says nothing builds, or None to keep polling.

        ``isAppBuilding`` is false between two queued builds, and while a build that waited in
        CapRover's queue runs (ServiceManager.onBuildFinished does not set it again), so only a
        version newer than ``before`` that is live, or a failed build, ends the wait.
        """
        newer = sorted((v for v in listing.versions if v.version > before), key=lambda v: v.version)
        if not newer:
            return None
        live = listing.get(listing.deployed_version) if listing.deployed_version is not None else None
        if live is not None and live.version > before and live.image:
            if git_hash is None or live.git_hash == git_hash:
                return DeployOutcome(result="ok", version=live.version, image=live.image,
                                     log_tail=status.log_lines[-20:])
            ours = next((v for v in newer if v.image and v.git_hash == git_hash), None)
            built = f" (railguard's build was version {ours.version}, replaced since)" if ours else ""
            raise DeploySuperseded(
                f"superseded by another deploy: CapRover runs version {live.version} of {self.app}, built from "
                f"{_short(live.git_hash)}, not {git_hash[:12]}{built}",
                hint="A deploy from the dashboard, a webhook or the CLI replaced this one in CapRover's queue; "
                     "check `railguard deploys list --caprover` and deploy again if this commit should run",
                version=live.version, image=live.image, live_git_hash=live.git_hash)
        if status.failed and newer[-1].image is None:
            raise BuildFailed(f"CapRover's build of version {newer[-1].version} of {self.app} failed",
                              hint="The app keeps running the previous version; read the build "
                                   "log above or in the dashboard", log_tail=status.log_lines[-20:])
        return None


def _short(git_hash: str | None) -> str:
    return git_hash[:12] if git_hash else "no commit (a deploy without gitHash)"
