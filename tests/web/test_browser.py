"""The status page as a person sees it: headless Chromium (Debian's, at /usr/bin/chromium) driven by
Playwright, loading each page over HTTP from a real server on 127.0.0.1 over the site of
tests/web/conftest.py. A screenshot of each page at phone and desktop width goes to the test's
tmp directory (the artifact); ``RAILGUARD_WEB_SCREENSHOT=PATH`` also writes the desktop overview
there (how docs/web.png is made).

Playwright never downloads a browser here: it launches the packaged Chromium by its path, with
a fresh profile and everything that would talk to the network turned off.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web.conftest import BACKUP_DAYS, DOWN_FROM, DOWN_UNTIL, ROUNDS, Site
from web.test_access import TOKEN, basic, with_token

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTHS = {"phone": 390, "desktop": 1280}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian's chromium package; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=ARGS, headless=True, timeout=120_000)
        try:
            yield context
        finally:
            context.close()
        shutil.rmtree(profile, ignore_errors=True)


def look(browser: Any, url: str, width: int, shot: Path, *, color_scheme: str = "light",
         headers: dict[str, str] | None = None) -> Any:
    page = browser.new_page()
    page.emulate_media(color_scheme=color_scheme)
    if headers:
        page.set_extra_http_headers(headers)
    page.set_viewport_size({"width": width, "height": 900})
    page.set_default_timeout(60_000)
    response = page.goto(url, wait_until="load")
    page.screenshot(path=str(shot), full_page=True)
    return page, response


def test_the_overview_shows_each_app_its_newest_backup_and_the_incident(
        browser: Any, site: Site, serve: Callable[..., str], tmp_path: Path) -> None:
    base = serve(site)
    for name, width in WIDTHS.items():
        page, response = look(browser, base + "/", width, tmp_path / f"overview-{name}.png")
        try:
            assert response.status == 200
            assert page.title() == "FAILING · railguard"
            card = page.locator("section.app[data-app=tasks]")
            assert card.locator(".app-state").inner_text() == "OK"
            assert card.locator(".backup-age").inner_text() == "8h 30m ago"
            notes = page.locator("section.app[data-app=notes]")
            assert notes.locator(".app-state").inner_text() == "FAILING"  # never backed up
            assert notes.locator(".backup-age").inner_text() == "none"
            target = page.locator("section.target[data-target=tasks]")
            assert target.locator("circle.point").count() == ROUNDS
            assert target.locator("circle.point.bad").count() == DOWN_UNTIL - DOWN_FROM
            assert target.locator("tr.incident td.duration").inner_text() == "5m"
            # Each heartbeat by its variable, with its job, last ping and result.
            backup = page.locator("table.heartbeats tr.heartbeat[data-app=tasks][data-job=backup]")
            assert backup.is_visible()
            assert [backup.locator(f"td.{cell}").inner_text() for cell in ("target", "job", "last-ping", "result")] \
                == ["$TASKS_BACKUP_PING_URL", "backup:tasks", "8h 30m ago", "ok"]
            drill = page.locator("table.heartbeats tr.heartbeat[data-job=drill] td.result")
            assert drill.inner_text() == "failed: HTTP 404 (ping 0)"
            assert "ping/" not in page.locator("body").inner_text()  # no ping URL
            # Nothing wider than the screen: the page reflows on a phone.
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            page.close()
    if os.environ.get("RAILGUARD_WEB_SCREENSHOT"):
        shutil.copyfile(tmp_path / "overview-desktop.png", os.environ["RAILGUARD_WEB_SCREENSHOT"])


def test_the_app_page_draws_one_mark_per_backup_and_lists_drills_and_deploys(
        browser: Any, site: Site, serve: Callable[..., str], tmp_path: Path) -> None:
    base = serve(site)
    for name, width in WIDTHS.items():
        page, response = look(browser, base + "/apps/tasks", width, tmp_path / f"app-{name}.png")
        try:
            assert response.status == 200 and page.title() == "OK · tasks"
            timeline = page.locator("svg.chart").first
            assert timeline.locator("circle.mark").count() == BACKUP_DAYS
            assert timeline.locator("circle.mark.bad").count() == 1
            assert timeline.bounding_box()["width"] > width * 0.6  # the chart is drawn, at the page's width
            assert page.locator("table.drills tr.ok td").nth(1).inner_text() == "ok"
            assert page.locator("table.drills tr.ok td").nth(2).inner_text() == "4.5 s"
            assert page.locator("table.deploys tr.flagged").count() == 1
            first, second = sorted(site.gate_runs.values())
            assert page.locator("table.deploys td.gate-run").all_inner_texts() == [
                f"run #{second} deployed", f"run #{first} rolled_back", "-"]
            assert page.locator("table.heartbeats tr.heartbeat").count() == 3
            assert page.locator("tr.heartbeat[data-job=replicate] td.last-ping").inner_text() == "never"
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            page.close()


def test_dark_mode_changes_the_colours(browser: Any, site: Site, serve: Callable[..., str], tmp_path: Path) -> None:
    base = serve(site)
    backgrounds = {}
    for scheme in ("light", "dark"):
        page, _ = look(browser, base + "/", WIDTHS["phone"], tmp_path / f"overview-{scheme}.png", color_scheme=scheme)
        try:
            backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        finally:
            page.close()
    assert backgrounds == {"light": "rgb(247, 247, 248)", "dark": "rgb(20, 22, 26)"}


def test_without_the_token_the_page_answers_401_and_with_it_opens(
        browser: Any, site: Site, serve: Callable[..., str], tmp_path: Path) -> None:
    base = serve(site, with_token(site))
    # Chromium turns a Basic challenge it has no credentials for into a navigation error
    # (ERR_INVALID_AUTH_CREDENTIALS) instead of a page: the browser's own request shows the answer.
    refused = browser.request.get(base + "/")
    assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert "tasks" not in refused.text()
    page, response = look(browser, base + "/", WIDTHS["desktop"], tmp_path / "opened.png", headers=basic(TOKEN))
    try:
        assert response.status == 200 and page.locator(".backup-age").first.inner_text() == "8h 30m ago"
    finally:
        page.close()


def test_the_public_page_opens_without_the_token_and_shows_uptime_only(
        browser: Any, site: Site, serve: Callable[..., str], tmp_path: Path) -> None:
    base = serve(site, with_token(site, public=True))
    for name, width in WIDTHS.items():
        page, response = look(browser, base + "/public", width, tmp_path / f"public-{name}.png")
        try:
            assert response.status == 200 and page.title() == "OK · status"
            target = page.locator("section.target[data-target=tasks]")
            assert target.locator("circle.point").count() == ROUNDS
            assert target.locator("tr.incident td.duration").inner_text() == "5m"
            text = page.content()
            assert "127.0.0.1:9" not in text and "HTTP 503" not in text and "backup" not in text
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            page.close()


def test_the_daemon_serves_the_overview_behind_the_token_beside_its_open_metrics(
        browser: Any, site: Site, tmp_path: Path) -> None:
    """The same page from the daemon's own server (its route table, its /metrics), on the site's
    state and clock; the daemon's loop is not started, so no job runs during the test."""
    from railguard.daemon import http as daemon_http
    from railguard.daemon.jobs import plan_jobs, runlog_path
    from railguard.daemon.runlog import RunLog
    from railguard.daemon.runner import Daemon
    from railguard.web.app import web_routes

    runlog = RunLog(runlog_path(site.settings))
    daemon = Daemon(plan_jobs(site.settings), runlog, clock=lambda: site.now)
    server = daemon_http.serve(daemon, "127.0.0.1", 0,
                               routes=web_routes(site.settings, with_token(site), lambda: site.now))
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert browser.request.get(base + "/").status == 401
        assert browser.request.get(base + "/metrics").status == 200
        page, response = look(browser, base + "/", WIDTHS["phone"], tmp_path / "daemon-overview.png",
                              headers=basic(TOKEN))
        try:
            assert response.status == 200 and page.title() == "FAILING · railguard"
            card = page.locator("section.app[data-app=tasks]")
            assert card.locator(".backup-age").inner_text() == "8h 30m ago"
            assert page.locator("section.target[data-target=tasks] circle.point").count() == ROUNDS
            assert page.locator("tr.heartbeat[data-job=backup] td.result").inner_text() == "ok"
            assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"]
        finally:
            page.close()
    finally:
        server.stop()
        runlog.close()
