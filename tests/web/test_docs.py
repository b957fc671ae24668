"""docs/web.md names every route the status page serves, as it is written there."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from railguard.config import Settings
from railguard.web.app import Access, web_routes

DOCS = Path(__file__).resolve().parents[2] / "docs" / "web.md"


def test_every_route_of_the_status_page_is_in_its_docs() -> None:
    never_called = datetime(2026, 11, 30, tzinfo=timezone.utc)
    paths = [getattr(route, "path") for route in web_routes(Settings(), Access(None), lambda: never_called)]
    assert len(paths) == 6
    text = DOCS.read_text(encoding="utf-8")
    for path in paths:
        assert f"`{path.replace('{name}', 'NAME')}`" in text, path
