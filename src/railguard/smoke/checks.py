"""Judging one look at the app: a pure function of what ``/health``, ``/metrics`` and
``/version`` answered, the deploy's start time and the expected commit.

The plan's two metrics (shared/reference/monitoring.md): ``app_started_at`` in epoch
**milliseconds** and ``migrations_ok`` (0/1). A start time later than the deploy's start is
the proof that the process answering is the new one: an old process keeps answering
``/health`` 200 while the new image builds. The exposition text is parsed with
prometheus_client's parser, never with a regex.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from prometheus_client.parser import text_string_to_metric_families

from railguard.config import SmokeSettings


@dataclass(frozen=True)
class Observation:
    """What the app answered (None: the request itself failed, with ``*_error`` saying why)."""

    health_status: int | None
    health_body: str = ""
    health_error: str | None = None
    metrics_text: str | None = None
    metrics_error: str | None = None
    version_text: str | None = None


@dataclass(frozen=True)
class SmokeCheck:
    name: str  # health | metrics | migrations | new_process | commit
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Evaluation:
    checks: list[SmokeCheck]
    started_at: datetime | None = None
    commit: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def first_failure(self) -> SmokeCheck | None:
        return next((check for check in self.checks if not check.ok), None)


def evaluate(seen: Observation, *, deploy_started_at: datetime, expected_commit: str | None,
             settings: SmokeSettings) -> Evaluation:
    checks: list[SmokeCheck] = []
    if seen.health_status == 200:
        checks.append(SmokeCheck("health", True, "HTTP 200"))
    else:
        answer = f"HTTP {seen.health_status}" if seen.health_status is not None else (seen.health_error or "no answer")
        body = seen.health_body.strip().splitlines()[0][:200] if seen.health_body.strip() else ""
        checks.append(SmokeCheck("health", False, f"{answer}{': ' + body if body else ''}"))

    samples, parse_error = _samples(seen)
    if parse_error is not None:
        checks.append(SmokeCheck("metrics", False, parse_error))
        return Evaluation(checks, commit=_commit_from_version(seen.version_text))

    migrations = _value(samples, settings.migrations_metric)
    if migrations is None:
        checks.append(SmokeCheck("migrations", False, f"/metrics has no {settings.migrations_metric}"))
    elif migrations == 1:
        checks.append(SmokeCheck("migrations", True, f"{settings.migrations_metric} 1"))
    else:
        checks.append(SmokeCheck("migrations", False, f"{settings.migrations_metric} is {migrations:g}, expected 1"))

    started_ms = _value(samples, settings.started_metric)
    started_at = None
    if started_ms is None:
        checks.append(SmokeCheck("new_process", False, f"/metrics has no {settings.started_metric}"))
    else:
        started_at = datetime.fromtimestamp(started_ms / 1000, timezone.utc)
        if started_at > deploy_started_at:
            checks.append(SmokeCheck("new_process", True, f"started {_iso(started_at)}, after the deploy began "
                                                          f"({_iso(deploy_started_at)})"))
        else:
            checks.append(SmokeCheck("new_process", False,
                                     f"the process serving started {_iso(started_at)}, before the deploy began "
                                     f"({_iso(deploy_started_at)}): the old process is still serving"))

    commit = _commit_from_version(seen.version_text) or _commit_from_build_info(samples, settings)
    if expected_commit:
        if commit is None:
            checks.append(SmokeCheck("commit", False, f"neither /version nor a *_build_info metric names the "
                                                      f"commit (expected {expected_commit})"))
        elif same_commit(commit, expected_commit):
            checks.append(SmokeCheck("commit", True, f"serving {commit}"))
        else:
            checks.append(SmokeCheck("commit", False, f"serving {commit}, expected {expected_commit}"))
    return Evaluation(checks, started_at, commit)


def same_commit(seen: str, expected: str) -> bool:
    """Equal, or one an abbreviation (at least 7 hex digits, git's default) of the other."""
    seen, expected = seen.strip().lower(), expected.strip().lower()
    if seen == expected:
        return True
    shorter, longer = sorted((seen, expected), key=len)
    return len(shorter) >= 7 and longer.startswith(shorter)


Samples = dict[str, list[tuple[dict[str, str], float]]]


def _samples(seen: Observation) -> tuple[Samples, str | None]:
    if seen.metrics_text is None:
        return {}, f"/metrics: {seen.metrics_error or 'no answer'}"
    samples: Samples = {}
    try:
        for family in text_string_to_metric_families(seen.metrics_text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    except (ValueError, TypeError, IndexError) as exc:
        return {}, f"/metrics is not valid Prometheus text: {exc}"
    return samples, None


def _value(samples: Samples, name: str) -> float | None:
    values = samples.get(name)
    return values[0][1] if values else None


def _commit_from_version(text: str | None) -> str | None:
    if not text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    commit = document.get("commit") if isinstance(document, dict) else None
    return str(commit) if commit and commit != "unknown" else None


def _commit_from_build_info(samples: Samples, settings: SmokeSettings) -> str | None:
    names = [settings.build_info_metric] if settings.build_info_metric else [
        name for name in samples if name.endswith("_build_info")]
    for name in names:
        for labels, _ in samples.get(name or "", []):
            commit = labels.get(settings.commit_label)
            if commit and commit != "unknown":
                return commit
    return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
