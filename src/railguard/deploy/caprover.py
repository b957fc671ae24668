"""The CapRover backend: a small HTTP client over CapRover's ``/api/v2`` and the
:class:`CapRoverDeployer` that the deploy, rollback and release flows use.

Facts this module is built on (docs/deploy.md, and the CapRover sources):

* Every reply is an envelope ``{status, description, data}``, mostly with HTTP 200 **even on
  failure**: 100 is OK, 101 "deploy started", anything else is an error (1106: the auth token
  is not valid). HTTP 429 means another operation holds CapRover's lock: retry later.
* An exact commit is deployed with ``POST /api/v2/user/apps/appData/<app>?detached=1`` as a
  multipart form: ``sourceFile`` (a tar of the tree) and ``gitHash``. The app token
  (``x-captain-app-token``) is accepted on this route only.
* Build status (``GET appData/<app>``) and the version list (``GET appDefinitions``) need a
  login (``POST /api/v2/login`` → ``x-captain-auth``).
* Rollback has no endpoint: deploy ``captainDefinitionContent`` = ``FROM <previous image>``.
  Images are named ``img-captain-<app>:<version>``.

HTTP is the standard library's ``urllib``: four JSON calls and one multipart upload do not
justify a dependency. The multipart body is built in memory (the app's tree is a few MiB).
Secrets never reach a message: errors name the route, never the URL with its query string,
and anything CapRover echoes back is passed through :func:`railguard.secrets.redact`.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from railguard.deploy.deployer import AppVersion, AppVersions, DeployOutcome, VersionsUnavailable
from railguard.errors import Busy, ConfigError, NotFound, RailguardError
from railguard.secrets import Secret, redact

STATUS_OK = 100
STATUS_OK_DEPLOY_STARTED = 101
STATUS_OK_PARTIALLY = 102
STATUS_WRONG_PASSWORD = 1105
STATUS_AUTH_TOKEN_INVALID = 1106
STATUS_NOT_AUTHORIZED = 1102
_SUCCESS = {STATUS_OK, STATUS_OK_DEPLOY_STARTED, STATUS_OK_PARTIALLY}
# CapRover's words for a missing app: "App (tasks) could not be found. Make sure that you have created the app."
_APP_MISSING = re.compile(r"could not be found|not found", re.IGNORECASE)


def image_name(app: str, version: int) -> str:
    """The image CapRover builds for ``version`` of ``app``."""
    return f"img-captain-{app}:{version}"


class CapRoverError(RailguardError):
    """CapRover answered, and the answer was a failure."""

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class CapRoverUnreachable(CapRoverError):
    pass


class CapRoverRejectedCredentials(ConfigError):
    """A bad app token, password or webhook token is a configuration problem (exit 3)."""


class CapRoverAppNotFound(NotFound):
    pass


class CapRoverBusy(Busy):
    pass


class BuildFailed(CapRoverError):
    def __init__(self, message: str, *, hint: str | None = None, log_tail: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail or []


@dataclass
class Envelope:
    status: int
    description: str
    data: Any


@dataclass
class RetryPolicy:
    """How HTTP 429 is retried: ``attempts`` retries, delays doubling from ``first`` up to ``cap``."""

    attempts: int = 5
    first: float = 1.0
    cap: float = 20.0

    def delays(self) -> list[float]:
        return [min(self.cap, self.first * 2**i) for i in range(self.attempts)]


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
        envelope = self._call("POST", "/api/v2/login", json_body={"password": self.password.reveal()}, auth=None)
        token = (envelope.data or {}).get("token") if isinstance(envelope.data, dict) else None
        if not token:
            raise CapRoverError("CapRover's login reply carried no token")
        self._auth_token = Secret(token)

    def deploy_tar(self, app: str, tar: bytes, git_hash: str, *, use_app_token: bool) -> Envelope:
        body, content_type = _multipart({"gitHash": git_hash}, {"sourceFile": ("source.tar", tar)})
        return self._call("POST", f"/api/v2/user/apps/appData/{_quote(app)}", query={"detached": "1"},
                          body=body, content_type=content_type, auth="app-token" if use_app_token else "login",
                          app=app)

    def deploy_definition(self, app: str, definition: Mapping[str, Any], git_hash: str | None, *,
                          use_app_token: bool) -> Envelope:
        fields = {"captainDefinitionContent": json.dumps(definition)}
        if git_hash:
            fields["gitHash"] = git_hash
        body, content_type = _multipart(fields, {})
        return self._call("POST", f"/api/v2/user/apps/appData/{_quote(app)}", query={"detached": "1"},
                          body=body, content_type=content_type, auth="app-token" if use_app_token else "login",
                          app=app)

    def build_status(self, app: str) -> BuildStatus:
        data = self._call("GET", f"/api/v2/user/apps/appData/{_quote(app)}", auth="login", app=app).data or {}
        logs = data.get("logs") or {}
        return BuildStatus(building=bool(data.get("isAppBuilding")), failed=bool(data.get("isBuildFailed")),
                           log_lines=[str(line) for line in logs.get("lines") or []])

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
                    "webhook": "CAPROVER_WEBHOOK_TOKEN"}
        return self.secret_names.get(which, defaults[which])

    def _secrets(self) -> list[Secret | None]:
        return [self.app_token, self.password, self._auth_token]

    def _call(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
              json_body: Any = None, body: bytes | None = None, content_type: str | None = None,
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
        description = redact(envelope.description, [*self._secrets(), *extra_secrets])
        if envelope.status in {STATUS_AUTH_TOKEN_INVALID, STATUS_NOT_AUTHORIZED, STATUS_WRONG_PASSWORD}:
            raise self._rejected(auth, token_name, envelope.status)
        if app is not None and _APP_MISSING.search(description):
            raise _app_not_found(app)
        raise CapRoverError(f"CapRover refused {method} {path}: {description} (status {envelope.status})",
                            hint="See the app's log in the CapRover dashboard", status=envelope.status)

    def _rejected(self, auth: str | None, token_name: str | None, status: int) -> CapRoverRejectedCredentials:
        if auth == "app-token":
            variable, what = self._name("app-token"), "the app token"
            where = "copy it again from the app's Deployment tab (App Token) in the CapRover dashboard"
        elif auth == "login" or status == STATUS_WRONG_PASSWORD:
            variable, what = self._name("password"), "the password (or the login it gave)"
            where = "it is the password of the CapRover dashboard"
        else:
            variable, what = token_name or self._name("webhook"), "the webhook token"
            where = "copy the token= part of the webhook URL from the app's Deployment tab"
        return CapRoverRejectedCredentials(f"CapRover rejected {what} (status {status})",
                                           hint=f"Check ${variable}: {where}")

    def _send_with_retries(self, method: str, url: str, path: str, body: bytes | None, headers: dict[str, str],
                           extra_secrets: list[str | None]) -> Envelope:
        delays = self.retry.delays()
        for attempt in range(len(delays) + 1):
            status, payload = self._send_once(method, url, path, body, headers)
            if status != 429:
                return _parse_envelope(status, payload, method, path)
            if attempt < len(delays):
                self.sleep(delays[attempt])
        raise CapRoverBusy(f"CapRover stayed busy (HTTP 429, another operation in progress) after "
                           f"{len(delays)} retries of {method} {path}",
                           hint="Wait for the running build to finish, then try again")

    def _send_once(self, method: str, url: str, path: str, body: bytes | None,
                   headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        where = self.base_url
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except urllib.error.URLError as exc:
            reason = exc.reason
            detail = getattr(reason, "strerror", None) or str(reason)
            raise CapRoverUnreachable(f"cannot reach CapRover at {where}: {detail}",
                                      hint="Check deploy.caprover_url and that CapRover is up "
                                           f"(curl -sS {where}/api/v2/login)") from None
        except (TimeoutError, socket.timeout):
            raise CapRoverUnreachable(f"CapRover at {where} did not answer {method} {path} within "
                                      f"{self.timeout:.0f}s",
                                      hint="Raise deploy.request_timeout, or check CapRover's load") from None
        except (ConnectionError, OSError) as exc:
            raise CapRoverUnreachable(f"cannot reach CapRover at {where}: {exc.strerror or exc}",
                                      hint="Check deploy.caprover_url and that CapRover is up") from None


def _parse_envelope(http_status: int, payload: bytes, method: str, path: str) -> Envelope:
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


def _multipart(fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = f"railguard-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/x-tar\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class CapRoverDeployer:
    """A :class:`~railguard.deploy.deployer.Deployer` for one CapRover app.

    ``app-token`` mode can only start a build: CapRover's detached reply carries no version,
    and the build status needs a login, so the outcome is ``accepted``. ``login`` mode waits
    for the build, reports ``ok`` or raises :class:`BuildFailed` with the log's tail, and reads
    the version and image CapRover gave it.
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
        return self._outcome(before)

    def deploy_image(self, image: str, git_hash: str | None) -> DeployOutcome:
        before = self._newest_version()
        definition = {"schemaVersion": 2, "dockerfileLines": [f"FROM {image}"]}
        self.client.deploy_definition(self.app, definition, git_hash, use_app_token=self.mode == "app-token")
        return self._outcome(before)

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

    def _outcome(self, before: int | None) -> DeployOutcome:
        if self.mode != "login":
            return DeployOutcome(result="accepted")
        assert before is not None
        deadline = self.monotonic() + self.build_timeout
        while True:
            status = self.client.build_status(self.app)
            if not status.building:
                listing = self.client.app_versions(self.app)
                newest = max((v.version for v in listing.versions), default=-1)
                if newest > before:
                    ours = next(v for v in listing.versions if v.version == newest)
                    if listing.deployed_version == newest and ours.image:
                        return DeployOutcome(result="ok", version=newest, image=ours.image,
                                             log_tail=status.log_lines[-20:])
                    if status.failed:
                        raise BuildFailed(f"CapRover's build of version {newest} of {self.app} failed",
                                          hint="The app keeps running the previous version; read the build "
                                               "log above or in the dashboard", log_tail=status.log_lines[-20:])
            if self.monotonic() >= deadline:
                raise CapRoverError(f"CapRover's build of {self.app} did not finish within "
                                    f"{self.build_timeout:.0f}s",
                                    hint="Watch it in the dashboard; raise deploy.build_timeout for slow builds")
            self.client.sleep(self.poll_interval)
