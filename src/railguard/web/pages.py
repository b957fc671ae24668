"""The HTML of the status page, from the views of :mod:`railguard.web.model`.

Jinja2 with autoescaping on for every template: a backup name, a deploy's detail or a failure
reason is text from a file or a server, and is shown as text. Only the SVG of
:mod:`railguard.web.charts`, which escapes its own text, goes in as markup. The templates are
package data (``templates/``) loaded once per :class:`Pages`; each page carries its state in
its title and favicon and refreshes itself (``<meta http-equiv=refresh>``), so a pinned tab shows
trouble with no script at all.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime

import jinja2

from railguard import __version__
from railguard.web import charts
from railguard.values import describe_duration
from railguard.web.model import CHART_SPAN, HISTORY, AppView, Overview, PublicView, TargetView

STATE_WORDS = {"ok": "OK", "warning": "WARNING", "flagged": "FAILING", "none": "NO DATA"}


def clock(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2%}"


def favicon_uri(state: str) -> str:
    return "data:image/svg+xml," + urllib.parse.quote(charts.favicon(state))


class Pages:
    """The templates, loaded once; each method renders one page for ``now``."""

    def __init__(self, *, refresh_seconds: int = 60, base: str = "") -> None:
        self.refresh_seconds = refresh_seconds
        self.base = base
        # Compiled once and kept: the templates are package data, never edited under a running
        # server, so no request pays a stat of each template file to see whether it changed.
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("railguard.web", "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False)
        self.env.filters.update(duration=describe_duration, clock=clock, percent=percent, bytes=charts.human_bytes)
        self.env.globals.update(state_word=lambda state: STATE_WORDS.get(state, state.upper()),
                                favicon_uri=favicon_uri, version=__version__, refresh=refresh_seconds, base=base)

    def _render(self, name: str, now: datetime, state: str, **values: object) -> str:
        # The chart's span is this render's: nothing of one request is kept on the instance.
        def response_chart(target: TargetView) -> str:
            return charts.response_times(target.points, now - CHART_SPAN, now)

        return self.env.get_template(name).render(now=now, state=state, response_chart=response_chart, **values)

    def overview(self, view: Overview, timezone: str = "UTC") -> str:
        return self._render("overview.html", view.now, view.state, view=view, timezone=timezone)

    def app(self, view: AppView) -> str:
        timeline = charts.backup_timeline(view.backups, view.now - HISTORY, view.now)
        return self._render("app.html", view.now, view.state, view=view, timeline=timeline)

    def public(self, view: PublicView) -> str:
        return self._render("public.html", view.now, view.state, view=view)
