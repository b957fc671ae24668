"""The smoke check's requests follow railguard's HTTP policy (docs/http.md): a redirect is an
answer, not followed, and the app's loopback URL is asked directly even with HTTP_PROXY set."""

from __future__ import annotations

import pytest
from local_http import LocalServer, Redirector

from railguard.config import SmokeSettings
from railguard.smoke.runner import observe


def test_a_health_page_that_redirects_is_seen_as_the_redirect() -> None:
    app = Redirector(target_path="/login")
    try:
        seen = observe(app.base, SmokeSettings(), 5.0)
        assert seen.health_status == 302
        assert [r.path for r in app.requests if r.path == "/login"] == []
    finally:
        app.stop()


def test_the_apps_loopback_url_is_asked_directly_even_with_a_proxy_set(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, app = LocalServer(), LocalServer()
    try:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.base)
        monkeypatch.setenv("http_proxy", proxy.base)
        seen = observe(app.base, SmokeSettings(), 5.0)
        assert seen.health_status == 200
        assert proxy.requests == []
        assert "/health" in [r.path for r in app.requests]
    finally:
        proxy.stop()
        app.stop()
