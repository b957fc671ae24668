"""Protected backups: a backup that prune never removes (restic's ``--keep-tag``), with a reason.

A protection is a sidecar file ``<name>.keep.json`` beside the backup's manifest, never a field
in the manifest itself. The manifest is written once, at the end of a verified backup, and is
the only evidence of what was checked (its sha256 vouches for the data file, and destinations
compare it byte for byte): rewriting it to add or remove a protection would put that evidence
through a second write, and a crash or a full disk there must never cost a verified backup its
manifest. A sidecar is written and removed on its own (:func:`railguard.durable.write_bytes_atomic`,
temp file, fsync, rename, fsync of the directory), and a sidecar that cannot be read protects
nothing worse than "kept for ever" (see :func:`read_protections`): an unreadable one keeps its
backup, it never lets prune remove something a person asked to keep.

The backup file names (:mod:`railguard.backup.naming`) never match ``.keep.json``, so the
catalog, prune and replication see only backups; prune removes a sidecar together with its
backup once the protection has expired. Destinations honour the local protections of the same
names in their own prune (:mod:`railguard.destinations.prune`): the name of a backup is
never reused, so a protection names the same backup everywhere.

Whether a protection is still in force is decided by the pure retention policy with the clock
as a parameter (:meth:`Protection.active`); nothing here reads the clock.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from railguard.backup.catalog import Owner, resolve_backup
from railguard.durable import remove_durably, write_bytes_atomic
from railguard.errors import UsageError

SUFFIX = ".keep.json"
_NAME = re.compile(r"^(?P<name>.+)" + re.escape(SUFFIX) + "$")


@dataclass(frozen=True)
class Protection:
    """Why a backup is kept whatever the policy says, and until when (None: until unkept)."""

    name: str
    reason: str
    until: datetime | None = None
    #: When it was set (UTC).
    since: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or self.until > now

    def describe(self) -> str:
        """``protected: before the migration (until 2026-12-04 10:00 UTC)``"""
        until = f"until {self.until.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if self.until else "until unkept"
        return f"protected: {self.reason} ({until})"

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "until": self.until.isoformat(timespec="seconds") if self.until else None,
                "since": self.since.isoformat(timespec="seconds") if self.since else None}


def sidecar_path(directory: Path, name: str) -> Path:
    return directory / f"{name}{SUFFIX}"


def protect(directory: Path, name: str, reason: str, *, until: datetime | None, now: datetime) -> Protection:
    """Record (or replace) the protection of backup ``name`` in ``directory``, durably."""
    reason = reason.strip()
    if not reason:
        raise UsageError("a protection needs a reason", hint="Say why, e.g. --reason 'before the migration'")
    protection = Protection(name, reason, until.astimezone(timezone.utc) if until else None,
                            now.astimezone(timezone.utc))
    body = json.dumps({"name": name, **protection.as_dict()}, indent=2).encode() + b"\n"
    write_bytes_atomic(sidecar_path(directory, name), body)
    return protection


def unprotect(directory: Path, name: str) -> bool:
    """Remove the protection of ``name``; False when it had none."""
    try:
        remove_durably(sidecar_path(directory, name))
    except FileNotFoundError:
        return False
    return True


def unkeep(directory: Path, owner: str | Owner | None, name: str) -> tuple[str, bool]:
    """``railguard backups unkeep NAME``: remove the protection of backup ``name`` (``latest``:
    the newest good backup; ``NAME.keep.json`` names it too). The backup's name and whether it
    was protected.

    A protection whose backup was pruned since can still be removed by its name (never the
    backup's own files); any other name must be one of ``owner``'s backups (NotFound, with the
    nearest names, otherwise)."""
    wanted = name.removesuffix(SUFFIX)
    if wanted == "latest" or wanted not in read_protections(directory):
        wanted = resolve_backup(directory, owner, name).name
    return wanted, unprotect(directory, wanted)


def read_protections(directory: Path) -> dict[str, Protection]:
    """Every protection recorded in ``directory``, by backup name.

    A sidecar that cannot be read or parsed still protects its backup (reason says why, no
    end): asking a person to look is always better than removing what they asked to keep.
    """
    protections: dict[str, Protection] = {}
    if not directory.is_dir():
        return protections
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match is None or entry.name.startswith(".") or not entry.is_file():
            continue
        name = match["name"]
        try:
            data = json.loads(entry.read_bytes())
            until = data.get("until")
            since = data.get("since")
            protections[name] = Protection(name, str(data["reason"]), _utc(until) if until else None,
                                           _utc(since) if since else None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            protections[name] = Protection(name, f"unreadable {entry.name} ({type(exc).__name__}); inspect it")
    return protections


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment.astimezone(timezone.utc)
