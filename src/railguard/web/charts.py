"""The page's charts as inline SVG, drawn on the server: no script, nothing fetched at run time.

Each function is pure (the time span is a parameter) and returns SVG markup in which every text
is escaped here, so a template may insert it as it is. Colours are CSS classes (``good``,
``bad``, ``line``), so the page's light and dark schemes colour them; every mark has a
``<title>`` (a tooltip on a desktop, read by a screen reader) with what it stands for.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime

from railguard.monitor.store import CheckPoint
from railguard.web.model import BackupMark

WIDTH, HEIGHT, PAD = 600, 120, 6
#: Favicon colour per state (the tab shows trouble without a look at the page).
STATE_COLOURS = {"ok": "#1f9d55", "warning": "#d69e2e", "flagged": "#e53e3e", "none": "#718096"}


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _x(moment: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    fraction = min(1.0, max(0.0, (moment - start).total_seconds() / span))
    return round(PAD + fraction * (WIDTH - 2 * PAD), 1)


def _svg(label: str, body: str, height: int = HEIGHT) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{html.escape(label)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def backup_timeline(marks: Sequence[BackupMark], start: datetime, end: datetime) -> str:
    """One circle per backup on a time axis: green when verified, red when not, the area by stored bytes."""
    height = 60
    largest = max((mark.stored_bytes for mark in marks), default=0)
    parts = [f'<line class="axis" x1="{PAD}" y1="{height / 2}" x2="{WIDTH - PAD}" y2="{height / 2}"/>']
    for mark in marks:
        radius = 3.0 + (9.0 * math.sqrt(mark.stored_bytes / largest) if largest else 0.0)
        kind = "good" if mark.good else "bad"
        title = f"{mark.name}: {'verified' if mark.good else mark.status}, {human_bytes(mark.stored_bytes)}"
        parts.append(f'<circle class="mark {kind}" cx="{_x(mark.at, start, end)}" cy="{height / 2}" r="{radius:.1f}">'
                     f"<title>{html.escape(title)}</title></circle>")
    return _svg(f"{len(marks)} backups", "".join(parts), height)


def response_times(points: Sequence[CheckPoint], start: datetime, end: datetime) -> str:
    """A line of response times (ms), one dot per point; a failed check is a red dot on the floor.
    The time axis starts at ``start`` or at the first point, whichever is later: a monitor that
    started an hour ago gets an hour across the whole width, not a sliver at the right."""
    if points:
        start = max(start, points[0].at)
    answered = [point.response_time for point in points if point.response_time is not None]
    top = max(answered, default=0.0) or 1.0
    floor = HEIGHT - PAD
    # One pass, each coordinate computed and formatted once: a day of checks is 288 points per
    # target, ten targets on the overview. ``:.1f`` writes what ``round(v, 1)`` did (both round
    # the binary value correctly), and the time in a title is isoformat's cut to the minute, the
    # text of strftime("%Y-%m-%d %H:%M"): each in a fraction of the time.
    origin, span = start.timestamp(), (end - start).total_seconds() or 1.0
    x_scale, y_scale = (WIDTH - 2 * PAD) / span, (HEIGHT - 2 * PAD) / top
    bottom = str(floor)
    line: list[str] = []
    dots: list[str] = []
    for point in points:
        x = f"{PAD + min(span, max(0.0, point.at.timestamp() - origin)) * x_scale:.1f}"
        seconds = point.response_time
        ok = point.ok
        if ok and seconds is not None:
            y = f"{floor - seconds * y_scale:.1f}"
            line.append(f"{x},{y}")
        else:
            y = bottom
        # The title is made of numbers and a time only: nothing in it needs escaping.
        ms = "no answer" if seconds is None else f"{seconds * 1000:.0f} ms"
        dots.append(f'<circle class="point {"good" if ok else "bad"}" cx="{x}" cy="{y}" r="2">'
                    f"<title>{point.at.isoformat(' ', 'minutes')[:16]} UTC: {ms}{'' if ok else ', failed'}"
                    "</title></circle>")
    parts = [f'<line class="axis" x1="{PAD}" y1="{floor}" x2="{WIDTH - PAD}" y2="{floor}"/>',
             f'<polyline class="line" points="{" ".join(line)}"/>' if line else "", *dots]
    label = f"response times, {len(points)} points, up to {top * 1000:.0f} ms"
    return _svg(label, "".join(parts))


def favicon(state: str) -> str:
    """A dot in the state's colour, for ``<link rel=icon>`` and ``/favicon.svg``."""
    colour = STATE_COLOURS.get(state, STATE_COLOURS["none"])
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
            f'<circle cx="8" cy="8" r="7" fill="{colour}"/></svg>')
