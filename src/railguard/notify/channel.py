"""The one adapter in front of apprise.

apprise's contract (shared/reference/monitoring.md): ``Apprise.add(url)`` returns False for
a URL it cannot parse; ``notify()`` is truthy only when every service accepted the message
(1.x returns True/False/None, 2.x an ``AppriseResult``; None or NOMATCH means nothing was
sent, which is a failure here). URLs carry tokens, so nothing that leaves this module
contains one: reasons come from apprise's own log, scrubbed with :func:`redact`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from railguard.errors import ConfigError
from railguard.secrets import Secret, redact

# Commas may appear inside a URL's query (mailtos://...?to=a@x,b@y), so a comma separates
# two URLs only when a scheme follows it.
_SEPARATOR = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")

#: apprise's NotifyType values, by how the event reads.
KINDS = ("info", "success", "warning", "failure")


class ChannelError(ConfigError):
    """A notification URL apprise cannot use."""


def split_urls(text: str) -> list[str]:
    return [part.strip().rstrip(",") for part in _SEPARATOR.split(text) if part and part.strip().rstrip(",")]


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme or "?"


class AppriseChannel:
    """Every URL held in one secret; sending goes to all of them."""

    def __init__(self, urls: Secret, *, source: str) -> None:
        import apprise  # ~20 MB of plugins: loaded only by processes that notify

        self._secret = urls
        self.source = source
        self._urls = split_urls(urls.reveal())
        if not self._urls:
            raise ChannelError(f"{source} holds no notification URL",
                               hint="Put one or more apprise URLs in it, separated by spaces")
        self._apprise = apprise.Apprise()
        for number, url in enumerate(self._urls, start=1):
            if not self._apprise.add(url):
                raise ChannelError(
                    f"URL #{number} in {source} (scheme {scheme_of(url)}://) is not one apprise understands",
                    hint="Check it against https://github.com/caronc/apprise/wiki (the URL itself is not shown)")

    @property
    def schemes(self) -> list[str]:
        return [scheme_of(url) for url in self._urls]

    def secrets(self) -> list[str]:
        """Every string that must never be shown: the whole value and each URL's parts."""
        values = [self._secret.reveal(), *self._urls]
        for url in self._urls:
            parts = urlsplit(url)
            values += [parts.netloc, parts.path.strip("/"), parts.query]
            values += [piece for piece in parts.path.split("/") if len(piece) >= 6]
        return [value for value in values if value]

    def send(self, title: str, body: str, kind: str = "info") -> tuple[bool, str]:
        """``(delivered, reason)``; reason is apprise's last warning, redacted."""
        import apprise

        # apprise's LogCapture has no annotations.
        with apprise.LogCapture(level=apprise.logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            try:
                # A bool before apprise 2; from 2 an AppriseResult, true when delivered.
                result = bool(self._apprise.notify(body=body, title=title, notify_type=kind))
            except Exception as exc:  # a plugin bug must not take the job down with it
                result, extra = False, f"{type(exc).__name__}: {exc}"
            else:
                extra = ""
            log = captured.getvalue()
        if result:
            return True, ""
        lines = [line.split(" - ", 2)[-1] for line in log.splitlines() if line.strip()]
        reason = (extra or (lines[-1] if lines else "no service accepted the message")).strip()
        return False, redact(reason, self.secrets())[:300]
