"""What backups a directory holds, read from the files themselves (no separate index to drift).

A backup is *good* only when its data file and its manifest are both present and the manifest
says it was verified. Anything else is listed with the reason it is not good, and never
counted as a usable backup: a data file without a manifest (a crash between the two renames,
or a prune that removed the manifest first), a manifest without data, a manifest that does not
parse (:meth:`Manifest.parse` says why: one bad manifest makes one backup not good, never the
whole listing fail).

A backup belongs to an app by its manifest, never by its file name: two apps whose databases
share a file name may share a directory's name space (the configuration refuses that, but a
directory written before it did may hold both). Given an :class:`Owner`, :func:`list_backups`
returns only that app's backups and the ones whose manifest cannot say (no manifest, a bad
one: those are never good, so nothing uses them), and :func:`resolve_backup` refuses by name a
backup whose manifest names another app or database (:class:`ForeignBackup`).

Another app's backup is one whose manifest names that app (``app``), or, in a manifest from
before railguard recorded the app, whose ``source`` is another configured app's database.
Listing stops there, so an app's older backups still list after its database moved; a restore
over the app's database (:func:`check_belongs`) also refuses any ``source`` but that database.
"""

from __future__ import annotations

import difflib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from railguard.backup.manifest import BadManifest, Manifest
from railguard.backup.naming import BackupId, parse_name, stem_for
from railguard.errors import NotFound, UsageError

if TYPE_CHECKING:
    from railguard.config import AppSettings, Settings

GOOD = "ok"


class ForeignBackup(UsageError):
    """The backup's manifest says it was taken by another app, or from another database."""


class Owned(Protocol):
    """What says whose backup it is: a whole-file manifest, or a page generation's (railguard.pages)."""

    @property
    def app(self) -> str | None: ...

    @property
    def source(self) -> str: ...


@dataclass(frozen=True)
class Owner:
    """Whose backups: an app (its name under ``[apps]``) and its database, and the databases of
    the configuration's other apps (a backup taken from one of those is theirs)."""

    app: str
    database: Path
    #: (name, database) of every other app in the configuration.
    others: tuple[tuple[str, Path], ...] = ()
    #: A manifest's ``source`` -> the other app whose database it is (None: none), worked out
    #: once per Owner: a year of backups names the same source in every manifest, and each
    #: comparison resolves both paths (realpath) on disk. An Owner is made for one listing
    #: (:meth:`of`), so a database moved since is seen by the next one.
    _source_owners: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, settings: Settings, name: str, app: AppSettings | None = None) -> Owner:
        """App ``name`` of ``settings`` (``app``: its settings, when the caller holds them)."""
        database = (app or settings.apps[name]).database
        # An app over the same database file is no other owner by source (only by its name).
        return cls(name, database, tuple((other, other_app.database) for other, other_app in settings.apps.items()
                                         if other != name and not _same_path(str(other_app.database.absolute()),
                                                                             str(database.absolute()))))

    @property
    def stem(self) -> str:
        return stem_for(self.database)

    @property
    def source(self) -> str:
        """As the backup engine writes it into the manifest."""
        return str(self.database.absolute())

    def refusal(self, manifest: Owned, *, strict: bool = False) -> str | None:
        """Why ``manifest`` is not this owner's backup, or None when it is.

        Another app's name in the manifest, or another configured app's database as its source,
        make it that app's. A manifest from before railguard recorded the app (``app`` is null)
        is therefore told apart by its source. ``strict`` (a restore over the database) also
        refuses any source other than this app's database.
        """
        if manifest.app is not None and manifest.app != self.app:
            return f"it belongs to app {manifest.app!r} (database {manifest.source})"
        other = self._owner_of_source(manifest.source)
        if other is not None:
            return f"it was taken from {manifest.source}, the database of app {other!r}"
        if strict and not _same_path(manifest.source, self.source):
            return f"it was taken from {manifest.source}, not from {self.source}"
        return None


    def _owner_of_source(self, source: str) -> str | None:
        if source not in self._source_owners:
            self._source_owners[source] = next(
                (other for other, database in self.others if _same_path(source, str(database.absolute()))), None)
        return self._source_owners[source]


def _same_path(one: str, other: str) -> bool:
    return os.path.normpath(one) == os.path.normpath(other) or os.path.realpath(one) == os.path.realpath(other)


class Dated(Protocol):
    """What a record reads of its manifest: when the backup was taken (either kind of manifest)."""

    @property
    def created(self) -> datetime: ...


class Record(ABC):
    """What a listing says of one backup, a whole-file one (:class:`BackupRecord`) or a page
    generation (:class:`railguard.pages.catalog.GenerationRecord`): its name, whether it is good
    and why not, and when it was taken. One place for these, so the two kinds cannot drift apart
    in what the retention plan, ``status`` and the listings read of them.
    """

    id: BackupId
    manifest: Dated | None
    status: str  # "ok", or why the backup is not usable
    #: More on a status that is not "ok" (what the manifest parser refused), or "".
    detail: str

    @property
    def name(self) -> str:
        return str(self.id)

    @property
    def is_good(self) -> bool:
        return self.status == GOOD

    @property
    def reason(self) -> str:
        """The status with its detail: ``unreadable manifest (created_at: ... has no UTC offset)``."""
        return f"{self.status} ({self.detail})" if self.detail else self.status

    @property
    def created_at(self) -> datetime:
        """When the backup was taken (UTC): from the manifest, else when its file was written
        (the name carries the time in the configured zone, which this record does not know)."""
        if self.manifest is not None:
            return self.manifest.created
        return datetime.fromtimestamp(self._written.stat().st_mtime, timezone.utc)

    @property
    @abstractmethod
    def _written(self) -> Path:
        """The file whose time dates a record without a manifest."""


@dataclass
class BackupRecord(Record):
    id: BackupId
    directory: Path
    data_path: Path | None
    manifest_path: Path | None
    manifest: Manifest | None
    status: str
    detail: str = ""

    @property
    def has_bad_manifest(self) -> bool:
        """A manifest file is there but could not be read as one: a human should look."""
        return self.manifest_path is not None and self.manifest is None

    @property
    def _written(self) -> Path:
        path = self.data_path or self.manifest_path
        assert path is not None
        return path


def list_backups(directory: Path, stem: str | Owner | None = None) -> list[BackupRecord]:
    """Every backup in ``directory``, oldest first.

    ``stem``: only the backups of that database file stem; an :class:`Owner`: only that app's
    backups (by manifest, see the module docstring); None: every backup there.
    """
    owner = stem if isinstance(stem, Owner) else None
    return [record for record in _all_backups(directory, stem.stem if isinstance(stem, Owner) else stem)
            if owner is None or record.manifest is None or owner.refusal(record.manifest) is None]


def foreign_backups(directory: Path, owner: Owner) -> list[BackupRecord]:
    """The backups under ``owner``'s file stem whose manifest names another app or database."""
    return [record for record in _all_backups(directory, owner.stem)
            if record.manifest is not None and owner.refusal(record.manifest) is not None]


def _all_backups(directory: Path, stem: str | None) -> list[BackupRecord]:
    if not directory.is_dir():
        return []
    data: dict[BackupId, Path] = {}
    manifests: dict[BackupId, Path] = {}
    for entry in directory.iterdir():
        parsed = parse_name(entry.name, stem)
        if parsed is None or not entry.is_file():
            continue
        backup_id, kind = parsed
        (manifests if kind == "manifest" else data)[backup_id] = entry
    records = []
    for backup_id in sorted(data.keys() | manifests.keys()):
        record = _record(backup_id, directory, data.get(backup_id), manifests.get(backup_id))
        try:
            record.created_at  # noqa: B018  (reads the file's time when there is no manifest)
        except FileNotFoundError:
            continue  # removed by a prune while we listed: it is not there
        records.append(record)
    records.sort(key=lambda record: (record.created_at, record.id))
    return records


def _record(backup_id: BackupId, directory: Path, data_path: Path | None, manifest_path: Path | None) -> BackupRecord:
    manifest = None
    detail = ""
    if manifest_path is None:
        status = "incomplete: no manifest"
    else:
        try:
            manifest = Manifest.read(manifest_path)
        except FileNotFoundError:  # a prune removed it while we listed (manifest first, then data)
            return _record(backup_id, directory, data_path, None)
        except OSError as exc:
            status, detail = "unreadable manifest", exc.strerror or str(exc)
        except BadManifest as exc:
            status, detail = "unreadable manifest", str(exc)
        else:
            if data_path is None:
                status = "missing data file"
            elif data_path.name != manifest.file:
                status = f"manifest names {manifest.file}"
            else:
                status = manifest_status(manifest.name, manifest.verified, backup_id)
    return BackupRecord(backup_id, directory, data_path, manifest_path, manifest, status, detail)


def manifest_status(name: str, verified: bool, backup_id: BackupId) -> str:
    """What a readable manifest says of the backup (or generation) ``backup_id`` it was found
    under: GOOD, or why not (it names another backup, or was never verified)."""
    if name != str(backup_id):
        return f"manifest is for {name}"
    return GOOD if verified else "not verified"


def bad_manifest_warnings(records: list[BackupRecord]) -> list[str]:
    """One line per backup whose manifest does not parse, for the commands to print."""
    return [f"backup {record.name} is not usable: {record.status} ({record.detail}); the other backups are "
            f"unaffected; inspect {record.manifest_path}" for record in records if record.has_bad_manifest]


def resolve_backup(directory: Path, stem: str | Owner | None, name: str | None, *,
                   allow_foreign: bool = False) -> BackupRecord:
    """The backup called ``name`` (``latest`` or None: the newest good one).

    With an :class:`Owner`, a backup named explicitly whose manifest names another app or
    database is refused with :class:`ForeignBackup` (returned when ``allow_foreign``: a restore
    into another file); ``latest`` only ever picks the owner's.
    """
    records = list_backups(directory, stem)
    owner = stem if isinstance(stem, Owner) else None
    if name in (None, "latest"):
        good = [record for record in records if record.is_good]
        if not good:
            hint = "Take one with: railguard backup"
            foreign = foreign_backups(directory, owner) if owner else []
            if owner is not None and foreign and foreign[-1].manifest is not None:
                hint = (f"{len(foreign)} backup(s) there belong to another app or database (such as "
                        f"{foreign[-1].name}: {owner.refusal(foreign[-1].manifest)}); {hint}")
            raise NotFound(f"no verified backup in {directory}", hint=hint)
        return good[-1]
    wanted = _strip_suffixes(name)
    for record in records:
        if record.name == wanted:
            return record
    if owner is not None:
        for record in foreign_backups(directory, owner):
            if record.name == wanted:
                if not allow_foreign:
                    check_belongs(record, owner)
                return record
    names = [record.name for record in records]
    nearest = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5) or names[-3:]
    hint = f"Did you mean: {', '.join(nearest)}" if nearest else "Take one with: railguard backup"
    raise NotFound(f"no backup named {name!r} in {directory}", hint=hint)


def check_belongs(record: BackupRecord, owner: Owner) -> None:
    """Before a restore over ``owner``'s database: raise :class:`ForeignBackup` unless the
    record's manifest names this app (or none) and this database as its source."""
    if record.manifest is not None:
        check_belongs_manifest(record.name, record.manifest, owner)


def check_belongs_manifest(name: str, manifest: Owned, owner: Owner) -> None:
    """:func:`check_belongs` for the backup ``name`` whose manifest is ``manifest`` (a page generation's too)."""
    why = owner.refusal(manifest, strict=True)
    if why is not None:
        raise ForeignBackup(f"backup {name} is not app {owner.app!r}'s: {why}",
                            hint="Restore it as the app that took it (--app NAME), or into another file with --to PATH")


def _strip_suffixes(name: str) -> str:
    for suffix in (".manifest.json", ".zst", ".gz", ".sqlite3"):
        name = name.removesuffix(suffix)
    return name
