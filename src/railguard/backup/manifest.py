"""The manifest: a JSON file beside each backup that says what it is and how it was verified.

It travels with the backup (to destinations too), so any copy can be checked on its own:
the sha256 of the stored bytes, the sha256 of the raw database they decompress to, and the
result of the integrity check that ran before the backup got its final name. It also says
whose backup it is: the app (``app``) and the database it was taken from (``source``); a
backup belongs to an app by these two fields, never by its file name (docs/backup.md).

A manifest is read in one place, :meth:`Manifest.parse`, by a strict typed parser: every
key the reader relies on must be there with its type (a size as a string, a ``created_at``
that is not an ISO 8601 time with its UTC offset, ``null`` where a value belongs: all
refused), so code that holds a :class:`Manifest` never meets a surprise. A manifest that
fails is :class:`BadManifest`, with a one-line reason; the catalog turns that into one
backup that is not good, and every other backup stays usable.

A pre-deploy snapshot (railguard.rehearsal.snapshot) is an ordinary backup whose manifest also
says which deploy it was taken for (:class:`DeployOrigin`, key ``deploy``): the commit going
live and the one it replaces. The key is optional, so every older manifest still reads; it is
written once with the rest, before the manifest gets its name, so it is as trustworthy as the
checks beside it (the manifest never changes after that, see backup/protection.py).

The parser is a table of small checks (:data:`_CHECKS`), one per field, not a pydantic model:
``railguard status`` and ``backups list`` read every manifest, and building a pydantic
validator for this one flat object cost them more than the reading (docs/cli.md, start-up).
Its words are pydantic's strict mode's ("Input should be a valid integer"), as the
configuration's are, so a reason reads the same wherever it comes from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

FORMAT = 1


class BadManifest(ValueError):
    """A manifest that cannot be trusted: not JSON, not an object, a key missing or mistyped.
    ``str()`` is the one-line reason."""


@dataclass
class DeployOrigin:
    """The deploy a pre-deploy snapshot was taken for (the manifest's ``deploy`` key; keys inside
    it that this railguard does not know are ignored, as the manifest's own are)."""

    #: What the deploy puts live; None when the flow does not know it yet (an image rollback
    #: of an app whose history has no commit for that image).
    commit: str | None
    #: The commit that was live before, as the deploy history says; None on a first deploy.
    replaces: str | None
    #: ``deploy``, ``release`` or ``rollback``.
    kind: str
    #: The row of the deploy history; None when taken outside a deploy.
    deploy_id: int | None = None


@dataclass
class Manifest:
    # Each field's check is in _CHECKS below. Keys we do not know are ignored, so a manifest
    # written by a newer railguard still reads.
    name: str
    file: str
    source: str
    created_at: str  # ISO 8601 with its offset (UTC when railguard writes it)
    sqlite_version: str
    page_size: int
    page_count: int
    journal_mode: str  # of the source; restore puts it back
    size_raw: int
    size_stored: int
    sha256: str  # of the stored file
    raw_sha256: str  # of the decompressed database
    method: str
    compression: str
    level: int | None
    check: str  # integrity | quick
    check_result: str  # "ok" or the first problem
    verified: bool
    foreign_key_problems: int
    durations: dict[str, float] = field(default_factory=dict)
    wal_bytes: int = 0  # size of the source's -wal when the copy was taken
    railguard_version: str = ""
    #: The app (its name under ``[apps]``) that took the backup; None in manifests written
    #: before railguard recorded it: those belong to whichever app has ``source`` as its database.
    app: str | None = None
    #: Set on a pre-deploy snapshot only: the deploy it was taken before.
    deploy: DeployOrigin | None = None
    format: int = FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate a decoded manifest; :class:`BadManifest` (a ValueError) names what is wrong."""
        return cls(**checked_fields(data, _CHECKS, _REQUIRED))

    @classmethod
    def parse(cls, data: bytes | str) -> Manifest:
        """The one parser of manifest text, for local files and copies at destinations alike."""
        return cls.from_dict(decode_document(data))

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Raises OSError when the file cannot be read, BadManifest when it is not a manifest."""
        return cls.parse(path.read_bytes())

    @property
    def created(self) -> datetime:
        """``created_at`` as an aware datetime (the parser guarantees it reads as one)."""
        return datetime.fromisoformat(self.created_at)

    @property
    def ratio(self) -> float:
        return self.size_stored / self.size_raw if self.size_raw else 1.0


def decode_document(data: bytes | str) -> Any:
    """The JSON of a manifest (whole-file or generation); :class:`BadManifest` when it is none."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadManifest(f"not JSON ({type(exc).__name__})") from None


def checked_fields(data: Any, checks: dict[str, Callable[[Any], Any]], required: set[str]) -> dict[str, Any]:
    """The values of a decoded JSON object, each through its check in ``checks`` (in its order);
    :class:`BadManifest` names the first problem and counts the others. Keys not in ``checks``
    are ignored. The generation manifests of railguard.pages.store are read by it too."""
    if not isinstance(data, dict):
        raise BadManifest(f"not a JSON object but {_json_kind(data)}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, check in checks.items():
        if key not in data:
            if key in required:
                problems.append(f"{key}: missing")
            continue
        try:
            values[key] = check(data[key])
        except _Refused as refused:
            problems += [f"{'.'.join((key, *where))}: {detail}" for where, detail in refused.problems]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadManifest(problems[0] + more)
    return values


class _Refused(Exception):
    """A value that fails its check: each problem as (where inside the value, what is wrong)."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]) -> None:
        super().__init__(problems)
        self.problems = problems


def _wrong(detail: str, got: Any = MISSING) -> _Refused:
    # A wrong type says what it got ("(got a string)"); a wrong value names itself already.
    return _Refused([((), detail if got is MISSING else f"{detail} (got {_json_kind(got)})")])


# Strict types: no coercion ("300" is not a size, 1 is not true, a number is not a name);
# bool is an int to Python, never to a manifest.
def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong("Input should be a valid string", got=value)
    return value


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong("Input should be a valid integer", got=value)
    return value


def _count(value: Any) -> int:
    count = _integer(value)
    if count < 0:
        raise _wrong("Input should be greater than or equal to 0", got=value)
    return count


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _wrong("Input should be a valid boolean", got=value)
    return value


def _seconds(value: Any) -> float:
    # An int is a float here too (JSON has one kind of number).
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _wrong("Input should be a valid number", got=value)
    return float(value)


def _aware_time(value: Any) -> str:
    text = _text(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _wrong(f"not an ISO 8601 time: {text[:40]!r}") from None
    if moment.tzinfo is None:
        raise _wrong(f"{text[:40]!r} has no UTC offset")
    return text


def _plain_file_name(value: Any) -> str:
    # The name becomes a path when the backup is fetched or removed: never a directory part.
    text = _text(value)
    if not text or "/" in text or "\\" in text or text in (".", "..") or "\x00" in text:
        raise _wrong(f"not a plain file name: {text[:40]!r}")
    return text


def _durations(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise _wrong("Input should be a valid dictionary", got=value)
    checked: dict[str, float] = {}
    problems: list[tuple[tuple[str, ...], str]] = []
    for key, seconds in value.items():  # every entry: the count of problems says how many are bad
        try:
            checked[_text(key)] = _seconds(seconds)
        except _Refused as refused:
            problems += [((str(key), *where), detail) for where, detail in refused.problems]
    if problems:
        raise _Refused(problems)
    return checked


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _deploy_origin(value: Any) -> DeployOrigin:
    if not isinstance(value, dict):
        raise _wrong("Input should be a dictionary or an instance of DeployOrigin", got=value)
    values: dict[str, Any] = {}
    problems: list[tuple[tuple[str, ...], str]] = []
    for key, check in _DEPLOY_CHECKS.items():
        if key not in value:
            if key in _DEPLOY_REQUIRED:
                problems.append(((key,), "missing"))
            continue
        try:
            values[key] = check(value[key])
        except _Refused as refused:
            problems += [((key, *where), detail) for where, detail in refused.problems]
    if problems:
        raise _Refused(problems)
    return DeployOrigin(**values)


_DEPLOY_CHECKS: dict[str, Callable[[Any], Any]] = {
    "commit": _optional(_text), "replaces": _optional(_text), "kind": _text, "deploy_id": _optional(_integer),
}
_DEPLOY_REQUIRED = {each.name for each in fields(DeployOrigin)
                    if each.default is MISSING and each.default_factory is MISSING}


#: Each field of :class:`Manifest`, in its order, and the check its value must pass (a
#: manifest's first problem is the first field's, as it was with the pydantic model).
_CHECKS: dict[str, Callable[[Any], Any]] = {
    # A name from a store is not trusted either, but it is checked against the file's own name
    # by whoever reads it (catalog: "manifest is for ..."), which says more than a type error.
    "name": _text, "file": _plain_file_name, "source": _text, "created_at": _aware_time,
    "sqlite_version": _text, "page_size": _count, "page_count": _count, "journal_mode": _text,
    "size_raw": _count, "size_stored": _count, "sha256": _text, "raw_sha256": _text, "method": _text,
    "compression": _text, "level": _optional(_integer), "check": _text, "check_result": _text,
    "verified": _flag, "foreign_key_problems": _count, "durations": _durations, "wal_bytes": _count,
    "railguard_version": _text, "app": _optional(_text), "deploy": _optional(_deploy_origin), "format": _integer,
}
_REQUIRED = {each.name for each in fields(Manifest) if each.default is MISSING and each.default_factory is MISSING}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__
