"""Secrets come from the environment or from a file named by ``<VAR>_FILE``; never from
``railguard.toml``, never printed.

:class:`Secret` keeps the value out of ``repr``/``str``; :func:`redact` scrubs secret values
from any text before it is logged or shown (an error message from a library may echo a URL
that carries a token, a server may echo the request body it refused).

A secret does not always come back as it was sent: a password with ``"`` or ``\\`` comes back
JSON-escaped in an echoed body, one with ``%``, ``&`` or a space URL-encoded in an echoed URL or
form. So :func:`redact` scrubs the literal value and its obvious encodings: JSON (ASCII and
not), Python ``repr``, HTML, URL (``quote`` with and without ``/``, ``quote_plus``), hex, and
base64 at each of the three byte alignments (the part of the encoding that the secret alone
decides, so a secret in the middle of an encoded blob is caught too). No scrubbing catches
every transformation (reversed, split, XORed): secrets are kept from untrusted code by
isolation (:mod:`railguard.deploy.isolation`), and this is the second line.

Every :class:`Secret` made in this process is remembered, so each boundary where text leaves
railguard (the CLI's errors and ``--json``, the deploy history, notifications) scrubs all of
them without being handed the list: :func:`redact` always includes :func:`known_secrets`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import html
import json
import os
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from railguard.errors import ConfigError

MASK = "***"
#: Shorter values are not scrubbed (a 3-letter "secret" would mask half of every message); an
#: encoded fragment shorter than this is not scrubbed either.
MIN_SECRET = 4
MIN_FRAGMENT = 8
_known: set[str] = set()
_known_lock = threading.Lock()


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= MIN_SECRET:
            with _known_lock:
                _known.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret(var: str, env: Mapping[str, str] = os.environ, *, required: bool = False) -> Secret | None:
    """``$VAR``, else the contents of the file named by ``$VAR_FILE`` (one trailing newline dropped)."""
    if env.get(var):
        return Secret(env[var])
    file_var = f"{var}_FILE"
    if env.get(file_var):
        path = Path(env[file_var])
        try:
            return Secret(path.read_text(encoding="utf-8").removesuffix("\n"))
        except OSError as exc:
            raise ConfigError(f"${file_var} names {path}, which cannot be read ({exc.strerror})",
                              hint=f"Point ${file_var} at a readable file") from None
    if required:
        raise ConfigError(f"the secret ${var} is not set",
                          hint=f"Export {var}, or put it in a file and export {file_var}=PATH")
    return None


def presented(authorization: str | None, token: Secret, *, basic: bool = True) -> bool:
    """Does an HTTP ``Authorization`` header carry ``token``: ``Bearer TOKEN`` or, when ``basic``
    (for a browser), HTTP Basic with the token as the password (any user name)? Compared with
    ``hmac.compare_digest`` on bytes, so the time taken does not say where the two differ."""
    scheme, _, given = (authorization or "").partition(" ")
    if basic and scheme.lower() == "basic":
        try:
            given = base64.b64decode(given.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.reveal().encode())


def known_secrets() -> list[str]:
    """Every secret value this process has read (each :class:`Secret` made)."""
    with _known_lock:
        return list(_known)


def redact(text: str, secrets: Iterable[Secret | str | None] = ()) -> str:
    """``text`` with every form of ``secrets`` and of :func:`known_secrets` replaced by ``***``."""
    values = {secret.reveal() if isinstance(secret, Secret) else secret for secret in secrets}
    values.update(known_secrets())
    for form in _all_forms(frozenset(value for value in values if value and len(value) >= MIN_SECRET)):
        if form in text:
            text = text.replace(form, MASK)
    return text


@functools.lru_cache(maxsize=64)
def _all_forms(values: frozenset[str]) -> tuple[str, ...]:
    # Longest first: a form that contains another must go whole, not leave a remnant.
    return tuple(sorted({form for value in values for form in encoded_forms(value)}, key=len, reverse=True))


def redact_document(document: Any) -> Any:
    """A JSON-able document with :func:`redact` applied to every string in it (keys included)."""
    if isinstance(document, str):
        return redact(document)
    if isinstance(document, dict):
        return {redact_document(key): redact_document(value) for key, value in document.items()}
    if isinstance(document, (list, tuple)):
        return [redact_document(value) for value in document]
    return document


@functools.lru_cache(maxsize=256)
def encoded_forms(value: str) -> frozenset[str]:
    """The value and the encodings of it that an echo, a log or a curious test suite produces."""
    raw = value.encode("utf-8")
    texts = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1],
             html.escape(value), html.escape(value, quote=False), urllib.parse.quote(value),
             urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    fragments = {raw.hex(), raw.hex().upper()}
    for skip in range(3):
        # Dropping the first ``skip`` bytes puts the rest on a 3-byte boundary: the encoding of
        # whole 3-byte groups is the same wherever in a blob the secret starts at that alignment.
        body = raw[skip:]
        body = body[:len(body) - len(body) % 3]
        if len(body) >= 3:
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                fragments.add(encode(body).decode())
    return frozenset({text for text in texts if len(text) >= MIN_SECRET}
                     | {fragment for fragment in fragments if len(fragment) >= MIN_FRAGMENT})
