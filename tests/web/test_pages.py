"""The pages and ``/api/`` routes over HTTP from a real server on 127.0.0.1: what they say, and
that they say it without script or anything from elsewhere."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser

from web.conftest import BACKUP_DAYS, DOWN_FROM, DOWN_UNTIL, ROUNDS, Site

from railguard.web import charts
from railguard.web.model import BackupMark, plain, build_overview
from railguard.values import describe_duration as duration


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


class Tags(HTMLParser):
    """Every start tag with its attributes (a page is read as markup, not searched as text)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def having(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags
                if name == tag and (cls is None or cls in (attrs.get("class") or "").split())]


def tags(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    return parser


def test_the_overview_shows_the_state_in_the_title_the_favicon_and_the_badge(site: Site, serve: Callable[..., str]
                                                                            ) -> None:
    status, html, headers = get(serve(site) + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    state = build_overview(site.settings, site.now).state
    word = {"ok": "OK", "warning": "WARNING", "flagged": "FAILING"}[state]
    assert re.search(r"<title>(.*?)</title>", html).group(1) == f"{word} · railguard"  # type: ignore[union-attr]
    [icon] = tags(html).having("link")
    assert icon["rel"] == "icon" and charts.STATE_COLOURS[state].replace("#", "%23") in (icon["href"] or "")
    [refresh] = [attrs for attrs in tags(html).having("meta") if attrs.get("http-equiv") == "refresh"]
    assert refresh["content"] == "60"
    assert "8h 30m ago" in html  # the newest backup, taken at 03:30, seen at 12:00


def test_the_pages_need_no_script_and_load_nothing_from_elsewhere(site: Site, serve: Callable[..., str]) -> None:
    base = serve(site)
    for path in ("/", "/apps/tasks"):
        _, html, _ = get(base + path)
        parsed = tags(html)
        assert parsed.having("script") == []
        for name, attrs in parsed.tags:
            for key in ("src", "href"):
                value = attrs.get(key) or ""
                assert not value.startswith(("http:", "https:", "//")), (path, name, value)


def test_the_app_page_draws_each_backup_and_each_check(site: Site, serve: Callable[..., str]) -> None:
    _, html, _ = get(serve(site) + "/apps/tasks")
    parsed = tags(html)
    marks = parsed.having("circle", "mark")
    assert len(marks) == BACKUP_DAYS
    assert len(parsed.having("circle", "bad")) == 1
    radii = [float(mark["r"] or 0) for mark in marks]
    assert radii == sorted(radii) and radii[0] < radii[-1]  # sized by stored bytes, which grew
    _, overview, _ = get(serve(site) + "/")
    assert len(tags(overview).having("circle", "point")) == ROUNDS
    assert duration(timedelta(minutes=DOWN_UNTIL - DOWN_FROM)) in overview


def test_an_unknown_app_is_404_and_names_only_the_app(site: Site, serve: Callable[..., str]) -> None:
    status, body, _ = get(serve(site) + "/apps/nope")
    assert status == 404 and body == "404: no app 'nope' in the configuration\n"


def test_the_api_has_the_views_as_json(site: Site, serve: Callable[..., str]) -> None:
    base = serve(site)
    status, body, _ = get(base + "/api/overview")
    assert status == 200
    assert json.loads(body) == json.loads(json.dumps(plain(build_overview(site.settings, site.now))))
    _, body, _ = get(base + "/api/apps/tasks")
    document = json.loads(body)
    assert len(document["backups"]) == BACKUP_DAYS and document["drills"][0]["seconds"] == 4.52
    [target] = json.loads(get(base + "/api/overview")[1])["targets"]
    assert target["incidents"][0]["duration_seconds"] == (DOWN_UNTIL - DOWN_FROM) * 60


def test_text_from_the_logs_is_escaped_and_the_charts_escape_their_own() -> None:
    from datetime import datetime, timezone

    at = datetime(2026, 11, 30, tzinfo=timezone.utc)
    svg = charts.backup_timeline([BackupMark("<b>x</b>", at, False, 10, "not verified <script>")],
                                 at - timedelta(days=1), at)
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_a_chart_of_an_hour_of_checks_spans_the_whole_width() -> None:
    from datetime import datetime, timezone

    from railguard.monitor.store import CheckPoint

    end = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    points = [CheckPoint(end - timedelta(minutes=60 - minute), True, 0.02) for minute in range(60)]
    dots = tags(charts.response_times(points, end - timedelta(hours=24), end)).having("circle", "point")
    xs = [float(dot["cx"] or 0) for dot in dots]
    assert xs[0] == charts.PAD and xs[-1] > charts.WIDTH - charts.PAD - 10


def test_the_overview_lists_the_maintenance_windows_and_the_one_that_is_on(site: Site, serve: Callable[..., str]
                                                                          ) -> None:
    import dataclasses

    from railguard.config import MaintenanceWindow

    monitor = site.settings.monitor.model_copy(update={"maintenance": [
        MaintenanceWindow(cron="0 11 * * *", duration=timedelta(hours=2))]})
    windowed = dataclasses.replace(site, settings=site.settings.model_copy(update={"monitor": monitor}))
    _, html, _ = get(serve(windowed) + "/")
    assert "<code>0 11 * * *</code> (UTC)" in html
    assert "on since 2026-11-30 11:00 UTC: no DOWN alerts" in html


def test_a_deploy_links_to_its_gate_run_or_names_it(site: Site, serve: Callable[..., str]) -> None:
    import dataclasses

    first, second = sorted(site.gate_runs.values())
    _, html, _ = get(serve(site) + "/apps/tasks")
    cells = re.findall(r'<td class="gate-run">(.*?)</td>', html)
    assert cells == [f"run #{second} deployed", f"run #{first} rolled_back", "-"]  # no gate address: no link
    gate = site.settings.gate.model_copy(update={"public_url": "http://127.0.0.1:8787/gate"})
    linked = dataclasses.replace(site, settings=site.settings.model_copy(update={"gate": gate}))
    _, html, _ = get(serve(linked) + "/apps/tasks")
    assert [attrs["href"] for attrs in tags(html).having("a") if "/runs/" in (attrs["href"] or "")] == [
        f"http://127.0.0.1:8787/gate/runs/{second}", f"http://127.0.0.1:8787/gate/runs/{first}"]
    assert f'<a href="http://127.0.0.1:8787/gate/runs/{second}">run #{second}</a> deployed' in html


def test_the_overview_and_the_app_page_list_the_heartbeats_by_their_variable(site: Site, serve: Callable[..., str]
                                                                            ) -> None:
    base = serve(site)
    for path, first_cell in (("/", "<td>tasks</td>\n"), ("/apps/tasks", "\n")):
        _, html, _ = get(base + path)
        assert ('<tr class="heartbeat warning" data-app="tasks" data-job="drill">' + first_cell
                + '<td class="target"><code>$TASKS_DRILL_PING_URL</code></td><td class="job">drill:tasks</td>\n'
                '<td class="last-ping">1d 8h ago</td>\n<td class="result">failed: HTTP 404 (ping 0)</td></tr>') in html
        assert '<td class="job">replicate (not run by the daemon)</td>\n<td class="last-ping">never</td>' in html
