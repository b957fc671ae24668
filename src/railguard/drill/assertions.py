"""SQL assertions on the drilled copy: a backup of an empty or stale database is a failed drill.

Pure evaluation (:func:`evaluate`, the clock a parameter) over values read by :func:`run_assertions`
through a read-only connection, so an assertion can never change the copy the app is using.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from railguard.values import parse_expectation

# Epoch numbers above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_EPOCH_MS_ABOVE = 1e11

@dataclass(frozen=True)
class AssertionResult:
    sql: str
    ok: bool
    value: Any
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"sql": self.sql, "ok": self.ok, "value": self.value, "detail": self.detail}


def parse_timestamp(value: Any) -> datetime | None:
    """ISO 8601 text (``2026-11-27T04:00:00Z``, ``2026-11-27 04:00:00``: UTC when no offset),
    or epoch seconds or milliseconds. None when it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > _EPOCH_MS_ABOVE else value
        return datetime.fromtimestamp(seconds, timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return parse_timestamp(float(text))
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return None


def evaluate(sql: str, value: Any, *, expect: str | None, max_age: timedelta | None, now: datetime) -> AssertionResult:
    """Does ``value`` (what ``sql`` returned) meet the expectation? Pure."""
    if expect is not None:
        expectation = parse_expectation(expect)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return AssertionResult(sql, False, value, f"returned {value!r}, not a number (expected {expectation})")
        ok = expectation.holds(float(value))
        return AssertionResult(sql, ok, value, f"{value!r} {'is' if ok else 'is not'} {expectation}")
    assert max_age is not None
    moment = parse_timestamp(value)
    if moment is None:
        return AssertionResult(sql, False, value, f"returned {value!r}, not a timestamp (expected one younger "
                                                  f"than {_hours(max_age)})")
    age = now - moment
    ok = age <= max_age
    return AssertionResult(sql, ok, value, f"newest is {_hours(age)} old ({'within' if ok else 'older than'} "
                                           f"{_hours(max_age)})")


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f}h"


def run_assertions(database: Path, assertions: Sequence[Any], *, now: datetime) -> list[AssertionResult]:
    """Run each assertion (``sql``, ``expect`` | ``max_age``) on ``database``, read-only."""
    results = []
    connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        connection.execute("PRAGMA query_only = ON")
        for assertion in assertions:
            try:
                row = connection.execute(assertion.sql).fetchone()
            except sqlite3.Error as exc:
                results.append(AssertionResult(assertion.sql, False, None, f"query failed: {exc}"))
                continue
            if row is None:
                results.append(AssertionResult(assertion.sql, False, None, "returned no row"))
                continue
            results.append(evaluate(assertion.sql, row[0], expect=assertion.expect, max_age=assertion.max_age, now=now))
    finally:
        connection.close()
    return results
