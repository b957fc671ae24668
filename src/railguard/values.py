"""Values the configuration is written in, and their parsers: durations, restic's calendar
durations (``Within``), schedules, drill expectations, listen addresses (``Listen``), the backup
stem of a database.

This module is a leaf: it imports nothing from railguard but :mod:`railguard.errors` (for
``Listen.parse``, which flags share with the configuration). :mod:`railguard.config` validates
its settings with these parsers, and the capabilities that use the values (retention, schedule,
drill, backup) import them from here, so no capability module is imported by the configuration
and no import runs back up from the base to a capability.

Every parser raises ``ValueError`` (``ScheduleError`` is one) with a message naming the expected
form; pydantic turns that into the configuration error that names the key. Pure: no clock, no disk.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from railguard.errors import ConfigError

# Durations ----------------------------------------------------------------------------------

#: The longest duration any setting takes (a year is already far more than any timeout means).
MAX_DURATION = timedelta(days=36500)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def describe_duration(delta: timedelta, *, precise: bool = False) -> str:
    """A duration as people read it, in its two largest units: ``3d 4h``, ``2h 5m``, ``7m``,
    ``45s`` (an age on a status row or page); ``precise`` pads the second unit and keeps the
    seconds under an hour, ``1h 02m``, ``5m 12s``, ``40s`` (how long an outage lasted)."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    second = "{:02d}" if precise else "{}"
    if days:
        return f"{days}d {second.format(hours)}h"
    if hours:
        return f"{hours}h {second.format(minutes)}m"
    if minutes:
        return f"{minutes}m {second.format(secs)}s" if precise else f"{minutes}m"
    return f"{secs}s"


def parse_duration(value: Any) -> timedelta:
    """``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _seconds(value, value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if text and "".join(number + unit for number, unit in parts) == text:
            return _seconds(sum(float(n) * _DURATION_UNITS[u] for n, u in parts), value)
    raise ValueError(f"expected a duration such as '30s', '5m', '1h30m' or '2d', got {value!r}")


def _seconds(seconds: float, given: Any) -> timedelta:
    # TOML has inf and nan, and 1e400 reads as inf; timedelta raises OverflowError past ~2.7 million years.
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"expected a finite duration of at most {MAX_DURATION.days} days, got {given!r}")
    return timedelta(seconds=seconds)


# restic's calendar durations (keep_within) ---------------------------------------------------

_WITHIN_PART = re.compile(r"(\d+)([ymdh])")
_WITHIN_UNITS = {"y": "years", "m": "months", "d": "days", "h": "hours"}
_WITHIN_MAX_YEARS = 1000


@dataclass(frozen=True)
class Within:
    """restic's calendar duration for ``--keep-within``: ``"2d"``, ``"1y6m"``, ``"36h"``.

    ``m`` is months (not minutes): years, months and days are calendar steps on the newest
    backup's local date, hours are exact hours, as restic computes them.
    """

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Within:
        compact = str(text).strip().replace(" ", "")
        parts = _WITHIN_PART.findall(compact)
        units = [unit for _, unit in parts]
        if not compact or "".join(n + u for n, u in parts) != compact or len(set(units)) != len(units):
            raise ValueError(f"expected a duration such as '2d', '36h' or '1y6m' (units y, m = months, d, h; "
                             f"each at most once), got {text!r}")
        within = cls(**{_WITHIN_UNITS[unit]: int(number) for number, unit in parts})
        # Far longer than anything kept; and much longer would put the cutoff before year 1,
        # which no date holds (OverflowError).
        if within.years + within.months / 12 + within.days / 365 + within.hours / 8760 > _WITHIN_MAX_YEARS:
            raise ValueError(f"keep-within is at most {_WITHIN_MAX_YEARS} years, got {text!r}")
        if within.is_zero():
            raise ValueError(f"keep-within must be longer than zero, got {text!r}")
        return within

    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        return "".join(f"{getattr(self, name)}{unit}" for unit, name in _WITHIN_UNITS.items()
                       if getattr(self, name)) or "0h"

    def cutoff(self, newest: datetime, tz: ZoneInfo) -> datetime:
        """The moment ``self`` before ``newest``; backups strictly after it are within.

        Mirrors Go's ``t.AddDate(-y, -m, -d).Add(-h hours)`` in the configured zone: calendar
        steps on the local date with overflow rolled forward (31 March minus 1 month is
        3 March, as ``time.Date`` normalises 31 February), then exact hours.
        """
        local = newest.astimezone(tz)
        month_index = local.year * 12 + (local.month - 1) - self.years * 12 - self.months
        first = date(month_index // 12, month_index % 12 + 1, 1)
        day = first + timedelta(days=local.day - 1 - self.days)
        wall = datetime(day.year, day.month, day.day, local.hour, local.minute, local.second, local.microsecond)
        return _go_local_to_utc(wall, tz) - timedelta(hours=self.hours)


def _go_local_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant of a local wall-clock time, choosing in DST gaps and overlaps as Go does.

    Go's ``time.Date`` looks up the offset in force at the wall time read as UTC, and if the
    resulting instant falls outside that offset's period it uses the offset at the instant.
    """
    as_if_utc = wall.replace(tzinfo=timezone.utc)
    first = _offset_at(as_if_utc, tz)
    candidate = as_if_utc - first
    second = _offset_at(candidate, tz)
    return as_if_utc - second if second != first else candidate


def _offset_at(moment: datetime, tz: ZoneInfo) -> timedelta:
    offset = moment.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


# Schedules ------------------------------------------------------------------------------------
# Cron expressions go through cronsim (healthchecks.io's parser, DST-aware); what the daemon does
# with a schedule (the catch-up rule) is railguard.schedule.plan's.

class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    text: str
    cron: str | None = None
    every: timedelta | None = None

    def next_after(self, moment: datetime, tz: str) -> datetime:
        """The first run strictly after ``moment`` (an aware datetime)."""
        if self.every is not None:
            return moment + self.every
        assert self.cron is not None, "parse_schedule gives a schedule an interval or a cron expression"
        local = moment.astimezone(ZoneInfo(tz))
        return next(iter(CronSim(self.cron, local.replace(microsecond=0)))).astimezone(moment.tzinfo)

    def previous_at_or_before(self, moment: datetime, tz: str) -> datetime:
        """The last scheduled run at or before ``moment``."""
        if self.every is not None:
            return moment - self.every
        assert self.cron is not None, "parse_schedule gives a schedule an interval or a cron expression"
        local = moment.astimezone(ZoneInfo(tz))
        # cronsim's reverse iteration starts strictly before its start: add a second to include ``moment``.
        start = local.replace(microsecond=0) + timedelta(seconds=1)
        return next(iter(CronSim(self.cron, start, reverse=True))).astimezone(moment.tzinfo)

    def __str__(self) -> str:
        return self.text


def parse_schedule(text: str) -> Schedule:
    """``"30 3 * * *"`` or ``"every 90s"`` / ``"every 5m"``; raises :class:`ScheduleError`."""
    stripped = " ".join(text.split())
    if stripped.startswith("every "):
        try:
            every = parse_duration(stripped.removeprefix("every "))
        except ValueError as exc:
            raise ScheduleError(f"{text!r}: {exc}") from None
        if every.total_seconds() < 1:
            raise ScheduleError(f"{text!r}: an interval must be at least 1s")
        return Schedule(stripped, every=every)
    try:
        CronSim(stripped, datetime(2026, 1, 1))
    except (CronSimError, ValueError, IndexError) as exc:
        raise ScheduleError(f"{text!r} is not a cron expression ({exc}); expected five fields such as "
                            f"'30 3 * * *', or an interval such as 'every 60s'") from None
    return Schedule(stripped, cron=stripped)


# Drill expectations ---------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}
_EXPECTATION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Expectation:
    operator: str
    number: float

    def __str__(self) -> str:
        return f"{self.operator} {self.number:g}"

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.operator](value, self.number)


def parse_expectation(text: str) -> Expectation:
    """``"> 0"`` → Expectation(">", 0); raises ValueError naming the accepted form."""
    match = _EXPECTATION.match(text)
    if match is None:
        raise ValueError(f"expect must be an operator (> >= < <= == !=) and a number, such as '> 0', got {text!r}")
    return Expectation(match.group(1), float(match.group(2)))


# Listen addresses -----------------------------------------------------------------------------
# One parser for every "where a server listens" setting and flag ([daemon] listen, the monitor's
# --metrics-listen, the gate's host and port), so that an IPv6 address is written the one way
# URLs write it (RFC 3986, section 3.2.2: "[::1]:9180") everywhere, and "::1:9180" (is 9180 a
# port or the address's last group?) is refused instead of guessed.

LISTEN_FORM = "HOST:PORT or [IPV6]:PORT, such as 127.0.0.1:9180 or [::1]:9180"


@dataclass(frozen=True)
class Listen:
    """An address and port to listen on; ``host`` is kept without brackets (``::1``), as
    ``bind`` takes it. ``str()`` writes it back with them: ``[::1]:9180``."""

    host: str
    port: int

    def __post_init__(self) -> None:
        problem = _host_problem(self.host)
        if problem:
            raise ValueError(problem)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"the port must be from 0 to 65535, got {self.port}")

    @classmethod
    def parse(cls, text: str, *, key: str) -> Listen:
        """``HOST:PORT`` or ``[IPV6]:PORT``; a :class:`~railguard.errors.ConfigError` names ``key``
        (a setting such as ``daemon.listen``, or a flag such as ``--listen``) and the form."""
        try:
            return cls.from_text(text)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}", hint=f"Write it as {LISTEN_FORM}") from None

    @classmethod
    def from_text(cls, text: str) -> Listen:
        """:meth:`parse` raising ``ValueError`` (for pydantic, which adds the key and the file)."""
        given = str(text)
        if given.startswith("["):
            inside, bracket, rest = given[1:].partition("]")
            if not bracket or not rest.startswith(":"):
                raise ValueError(f"expected [IPV6]:PORT, such as [::1]:9180, got {given!r}")
            host, port = inside, rest[1:]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{host!r} in brackets is not an IPv6 address, in {given!r}") from None
        else:
            host, colon, port = given.rpartition(":")
            if not colon:
                raise ValueError(f"expected {LISTEN_FORM}, got {given!r} (no port)")
            if ":" in host:
                raise ValueError(f"an IPv6 address goes in brackets before the port, such as [::1]:9180, "
                                 f"got {given!r}")
            if not host:
                raise ValueError(f"expected {LISTEN_FORM}, got {given!r} (no host; 127.0.0.1 is this machine "
                                 f"only, 0.0.0.0 every interface)")
        if not port.isascii() or not port.isdigit():
            raise ValueError(f"expected {LISTEN_FORM}, got {given!r} (the port is not a number)")
        if int(port) > 65535:
            raise ValueError(f"the port must be from 0 to 65535, got {given!r}")
        return cls(host, int(port))

    @property
    def is_loopback(self) -> bool:
        """Only this machine can connect: ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        """``http://`` and the address as a URL writes it (brackets around an IPv6 address)."""
        return f"http://{self}"

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _host_problem(host: str) -> str | None:
    """Why ``host`` (without a port) cannot be listened on, or None."""
    if not host.strip():
        return "the host is empty; 127.0.0.1 is this machine only, 0.0.0.0 every interface"
    if host.startswith("[") or host.endswith("]"):
        return f"write the address without brackets here, got {host!r}"
    if any(char.isspace() for char in host):
        return f"the host has a space in it, got {host!r}"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} is neither a name nor an IPv6 address (the port goes in a setting of its own)"
    return None


# The backup stem ------------------------------------------------------------------------------

def stem_for(database: Path) -> str:
    """The prefix of a database's backup names: ``tasks.db`` → ``tasks`` (``tasks-20261127-0330``)."""
    return database.name.split(".")[0] or database.name
