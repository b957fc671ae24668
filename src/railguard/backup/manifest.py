"""The manifest: a JSON file beside each backup that says what it is and how it was verified.

It travels with the backup (to destinations too), so any copy can be checked on its own:
the sha256 of the stored bytes, the sha256 of the raw database they decompress to, and the
result of the integrity check that ran before the backup got its final name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1


@dataclass
class Manifest:
    name: str
    file: str
    source: str
    created_at: str  # ISO 8601, UTC
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
    format: int = FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    @property
    def ratio(self) -> float:
        return self.size_stored / self.size_raw if self.size_raw else 1.0
