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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, ConfigDict, Field, Strict

FORMAT = 1


def _aware_time(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text[:40]!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text[:40]!r} has no UTC offset")
    return text


def _plain_file_name(text: str) -> str:
    # The name becomes a path when the backup is fetched or removed: never a directory part.
    if not text or "/" in text or "\\" in text or text in (".", "..") or "\x00" in text:
        raise ValueError(f"not a plain file name: {text[:40]!r}")
    return text


# Strict types: no coercion ("300" is not a size, 1 is not true, a number is not a name).
Text = Annotated[str, Strict()]
Count = Annotated[int, Strict(), Field(ge=0)]
Flag = Annotated[bool, Strict()]
Seconds = Annotated[float, Strict()]  # an int is a float here too (JSON has one kind of number)
Time = Annotated[str, Strict(), AfterValidator(_aware_time)]
FileName = Annotated[str, Strict(), AfterValidator(_plain_file_name)]


class BadManifest(ValueError):
    """A manifest that cannot be trusted: not JSON, not an object, a key missing or mistyped.
    ``str()`` is the one-line reason."""


@dataclass
class DeployOrigin:
    """The deploy a pre-deploy snapshot was taken for (the manifest's ``deploy`` key)."""

    __pydantic_config__ = ConfigDict(extra="ignore")

    #: What the deploy puts live; None when the flow does not know it yet (an image rollback
    #: of an app whose history has no commit for that image).
    commit: Text | None
    #: The commit that was live before, as the deploy history says; None on a first deploy.
    replaces: Text | None
    #: ``deploy``, ``release`` or ``rollback``.
    kind: Text
    #: The row of the deploy history; None when taken outside a deploy.
    deploy_id: Annotated[int, Strict()] | None = None


@dataclass
class Manifest:
    # Keys we do not know are ignored, so a manifest written by a newer railguard still reads.
    __pydantic_config__ = ConfigDict(extra="ignore")

    # A name from a store is not trusted either, but it is checked against the file's own name
    # by whoever reads it (catalog: "manifest is for ..."), which says more than a type error.
    name: Text
    file: FileName
    source: Text
    created_at: Time  # ISO 8601 with its offset (UTC when railguard writes it)
    sqlite_version: Text
    page_size: Count
    page_count: Count
    journal_mode: Text  # of the source; restore puts it back
    size_raw: Count
    size_stored: Count
    sha256: Text  # of the stored file
    raw_sha256: Text  # of the decompressed database
    method: Text
    compression: Text
    level: Annotated[int, Strict()] | None
    check: Text  # integrity | quick
    check_result: Text  # "ok" or the first problem
    verified: Flag
    foreign_key_problems: Count
    durations: dict[Text, Seconds] = field(default_factory=dict)
    wal_bytes: Count = 0  # size of the source's -wal when the copy was taken
    railguard_version: Text = ""
    #: The app (its name under ``[apps]``) that took the backup; None in manifests written
    #: before railguard recorded it: those belong to whichever app has ``source`` as its database.
    app: Text | None = None
    #: Set on a pre-deploy snapshot only: the deploy it was taken before.
    deploy: DeployOrigin | None = None
    format: Annotated[int, Strict()] = FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate a decoded manifest; :class:`BadManifest` (a ValueError) names what is wrong."""
        if not isinstance(data, dict):
            raise BadManifest(f"not a JSON object but {_json_kind(data)}")
        try:
            return _ADAPTER.validate_python(data)
        except pydantic.ValidationError as exc:
            raise BadManifest(_reason(exc)) from None

    @classmethod
    def parse(cls, data: bytes | str) -> Manifest:
        """The one parser of manifest text, for local files and copies at destinations alike."""
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise BadManifest(f"not JSON ({type(exc).__name__})") from None
        return cls.from_dict(document)

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


_ADAPTER = pydantic.TypeAdapter(Manifest)


def _reason(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "manifest"
    if first["type"] == "missing":
        detail = "missing"
    else:
        detail = first["msg"].removeprefix("Value error, ")
        if first["type"] != "value_error":
            detail += f" (got {_json_kind(first.get('input'))})"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{key}: {detail}{more}"


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
