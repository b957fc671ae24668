"""Forgejo push webhooks, judged without side effects: signature, parsing, and what to do.

Facts from shared/reference/forgejo-caprover.md that shape this module:

* The signature is HMAC-SHA256 keyed with the webhook secret over the **JSON payload**, lowercase
  hex: ``X-Forgejo-Signature`` and ``X-Gitea-Signature`` carry it bare, ``X-Hub-Signature-256``
  as ``sha256=<hex>`` (Forgejo services/webhook/shared/payloader.go, ``AddDefaultHeaders``). The
  payload is verified before it is parsed, and compared in constant time.
* With the content type ``application/json`` the body is that payload; with
  ``application/x-www-form-urlencoded`` the body is ``payload=<urlencoded JSON>`` but the signature
  is still over the JSON (services/webhook/default.go, ``defaultHandler.NewRequest`` signs
  ``payloadContent``, not ``forms.Encode()``): :func:`signed_payload` takes it out first.
* ``X-Forgejo-Delivery`` (also ``X-Gitea-Delivery``) is unique per delivery, and Forgejo's
  "Replay" button sends the same payload under a **new** one (models/webhook/hooktask.go,
  ``ReplayHookTask`` creates a new hook task with a new UUID): the queue dedupes on the delivery
  id and also on what the push means (app, ref, ``after``); docs/gate.md.
* For an annotated tag ``after`` is the tag object, not a commit: the worker peels it.
* A tag push is a ``push`` with ``ref: refs/tags/<t>``; a deletion has ``after`` = forty zeros;
  a branch delete sends no push at all. Every field here is data: nothing is ever handed to a
  shell.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from railguard.config import GateAppSettings
from railguard.errors import RailguardError, UsageError

ZERO_SHA = "0" * 40
#: Header -> prefix before the hex digest, in the order they are looked at.
SIGNATURE_HEADERS = (("x-forgejo-signature", ""), ("x-gitea-signature", ""), ("x-hub-signature-256", "sha256="))
EVENT_HEADERS = ("x-forgejo-event", "x-gitea-event", "x-github-event")
DELIVERY_HEADERS = ("x-forgejo-delivery", "x-gitea-delivery", "x-github-delivery")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class SignatureInvalid(RailguardError):
    """The delivery is not signed with the configured secret (HTTP 401)."""


class MalformedPayload(UsageError):
    """The body is not a push payload railguard can read (HTTP 400)."""


def _header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    lowered = {key.lower(): value for key, value in headers.items()}
    for name in names:
        value = lowered.get(name, "").strip()
        if value:
            return value
    return None


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def signed_payload(body: bytes, headers: Mapping[str, str]) -> bytes:
    """The bytes Forgejo signed and the JSON to parse: the body itself, or for a form-encoded
    delivery the value of its one ``payload`` field (Go's ``url.Values.Encode``, which
    :func:`urllib.parse.parse_qs` reverses exactly). Raises :class:`MalformedPayload`."""
    content_type = (_header(headers, ("content-type",)) or "").split(";", 1)[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        return body
    try:
        fields = urllib.parse.parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True,
                                       encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        fields = {}
    values = fields.get("payload", [])
    if len(values) != 1:
        raise MalformedPayload(f"a {FORM_CONTENT_TYPE} delivery must carry exactly one 'payload' field",
                               hint='Set the webhook\'s content type to "application/json" in Forgejo')
    return values[0].encode("utf-8")


def sign(body: bytes, secret: bytes) -> str:
    """The signature Forgejo puts in ``X-Forgejo-Signature`` for ``body``."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, headers: Mapping[str, str], secret: bytes) -> str:
    """Check the first signature header present against ``body`` (:func:`signed_payload`'s bytes);
    returns its name. Raises :class:`SignatureInvalid`."""
    lowered = {key.lower(): value.strip() for key, value in headers.items()}
    expected = sign(body, secret)
    for name, prefix in SIGNATURE_HEADERS:
        given = lowered.get(name)
        if not given:
            continue
        digest = given[len(prefix):] if prefix and given.lower().startswith(prefix) else given
        if prefix and not given.lower().startswith(prefix):
            raise SignatureInvalid(f"{name} does not start with {prefix!r}")
        # compare_digest on bytes: equal-length or not, the time does not depend on where they differ.
        if hmac.compare_digest(digest.lower().encode(), expected.encode()):
            return name
        raise SignatureInvalid(f"{name} does not match the body signed with the webhook secret",
                               hint="Set the same secret in Forgejo's webhook and in the gate's environment")
    raise SignatureInvalid("the delivery carries no signature (X-Forgejo-Signature, X-Gitea-Signature "
                           "or X-Hub-Signature-256)",
                           hint="Set a secret on the Forgejo webhook: without one Forgejo sends an empty signature")


@dataclass(frozen=True)
class Delivery:
    """One verified webhook request."""

    event: str
    delivery_id: str | None
    payload: dict[str, Any]


def parse_delivery(body: bytes, headers: Mapping[str, str]) -> Delivery:
    """Read a verified payload (:func:`signed_payload`'s bytes, not a form body)."""
    event = _header(headers, EVENT_HEADERS)
    if event is None:
        raise MalformedPayload("the delivery has no X-Forgejo-Event header")
    delivery_id = _header(headers, DELIVERY_HEADERS)
    if delivery_id is not None and len(delivery_id) > 200:
        raise MalformedPayload("X-Forgejo-Delivery is longer than 200 characters")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"the body is not JSON ({exc.__class__.__name__})",
                               hint='Set the webhook\'s content type to "application/json" in Forgejo') from None
    if not isinstance(payload, dict):
        raise MalformedPayload("the body is JSON but not an object")
    return Delivery(event=event.lower(), delivery_id=delivery_id, payload=payload)


@dataclass(frozen=True)
class Push:
    """What the gate keeps of a push payload."""

    app: str
    ref: str
    before: str
    after: str
    clone_url: str
    #: The pushed commit's first message line, for display only.
    title: str
    pusher: str


@dataclass(frozen=True)
class Verdict:
    action: Literal["queue", "ignore"]
    reason: str
    push: Push | None = None


def normalise_clone_url(url: str) -> str:
    """Compare clone URLs without the differences that do not name another repository: a trailing
    slash or ``.git``, and for http(s) the case (Forgejo looks owners and repositories up without it)."""
    text = url.strip().rstrip("/")
    text = text.removesuffix(".git")
    return text.lower() if text.lower().startswith(("http://", "https://")) else text


def decide(delivery: Delivery, apps: Mapping[str, GateAppSettings], *, tag_prefix: Mapping[str, str]) -> Verdict:
    """Pure: queue this delivery for an app, or ignore it with a reason (both answer 2xx).

    Raises :class:`MalformedPayload` for a push that lacks the fields Forgejo always sends.
    """
    if delivery.event != "push":
        return Verdict("ignore", f"event {delivery.event!r} is not a push")
    payload = delivery.payload
    ref, before, after = payload.get("ref"), payload.get("before"), payload.get("after")
    repository = payload.get("repository")
    if not isinstance(ref, str) or not ref.startswith("refs/") or len(ref) > 500:
        raise MalformedPayload("the push payload has no valid 'ref' (expected refs/heads/... or refs/tags/...)")
    for name, value in (("before", before), ("after", after)):
        if not isinstance(value, str) or not _SHA.fullmatch(value):
            raise MalformedPayload(f"the push payload's {name!r} is not a commit SHA")
    if not isinstance(repository, dict) or not isinstance(repository.get("clone_url"), str):
        raise MalformedPayload("the push payload has no repository.clone_url")
    assert isinstance(after, str) and isinstance(before, str)
    clone_url = repository["clone_url"]
    wanted = normalise_clone_url(clone_url)
    app_name = next((name for name, app in apps.items() if normalise_clone_url(app.clone_url) == wanted), None)
    if app_name is None:
        return Verdict("ignore", f"no gate app is configured for the repository {clone_url[:200]}")
    app = apps[app_name]
    if after == ZERO_SHA or set(after) == {"0"}:
        return Verdict("ignore", f"{ref} was deleted")
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        if not app.deploy_tags:
            return Verdict("ignore", f"tag push {tag!r}: {app_name} deploys the branch {app.branch!r}")
        prefix = tag_prefix.get(app_name, "v")
        if not fnmatch.fnmatchcase(tag, f"{prefix}*"):
            return Verdict("ignore", f"tag {tag!r} does not start with {prefix!r}")
    elif ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        if app.deploy_tags:
            return Verdict("ignore", f"branch push to {branch!r}: {app_name} deploys tags")
        if branch != app.branch:
            return Verdict("ignore", f"push to {branch!r}, not {app.branch!r}")
    else:
        return Verdict("ignore", f"{ref} is neither a branch nor a tag")
    head = payload.get("head_commit") if isinstance(payload.get("head_commit"), dict) else {}
    message = str((head or {}).get("message") or "")
    pusher = payload.get("pusher") if isinstance(payload.get("pusher"), dict) else {}
    push = Push(app=app_name, ref=ref, before=before, after=after, clone_url=clone_url,
                title=(message.splitlines() or [""])[0][:200],
                pusher=str((pusher or {}).get("username") or (pusher or {}).get("login") or "")[:100])
    return Verdict("queue", f"{ref} at {after[:12]} queued for {app_name}", push)
