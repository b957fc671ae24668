"""``take_generation``: one verified page-level generation of a live database.

How the pages are read. Two ways were measured (bench/generations.py, docs/pages.md):
(a) a read transaction on the source while railguard reads the database file's pages itself,
and (b) a one-step backup-API copy into a private file, then hashing that copy. (a) saves the
copy, but in WAL mode it is not a snapshot: committed pages live in the ``-wal`` until a
checkpoint, and a checkpoint cannot finish while our reader holds the WAL (wal.c), so reading
the file gives old pages for whatever the WAL holds; doing it right means parsing the WAL
ourselves (the ``sqlite_dbpage`` table that would do it is not built into Python's SQLite).
(b) is what SQLite guarantees consistent: ``backup(pages=-1)`` is one read transaction that
always finishes (a chunked one restarts whenever the app writes), the same copy the
whole-file backups take (:func:`railguard.backup.snapshot.take_snapshot`). We chose (b): the
copy costs about as much as reading the file and keeps the read transaction on the live
database as short as the copy; hashing happens after it has ended.

Order of work, and why:

1. Check the source, lock the database's backup lock (the one whole-file backups take: one
   run at a time), remove work directories killed runs left, and collect garbage: packs that
   no manifest names (a killed run wrote them) go now (:mod:`railguard.pages.gc`).
2. Read the packs in the store: which pages it already holds. A pack that does not hash to its
   name is damaged and does not count: its pages are stored again (a warning names the
   generations that named it), so one bad pack never fails every backup after it; when they
   make the very same pack, the good bytes replace the damaged file and mend those generations.
3. Copy the database (backup API, one step) into a private work directory.
4. Hash the copy page by page; pages the store lacks go into new packs, each compressed,
   named by its sha256, and made durable (fsync, link into ``packs/``, fsync the directory)
   before anything names it.
5. Rebuild the generation from the store alone into a second private file and check it: every
   page's hash, the whole file's sha256, ``integrity_check`` (:mod:`railguard.pages.rebuild`).
   Steps 4 and 5 run at background priority (:mod:`railguard.backup.priority`): the read
   transaction has ended, and the app's commits must not queue behind our hashing.
6. Only then give the manifest its name (written, fsynced, linked, directory fsynced), and log.

``kill -9`` anywhere leaves every earlier generation as it was (nothing they name is ever
written or removed here but by the GC of step 1, which keeps every pack a manifest names) and
at most packs and work directories that the next run removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import zstandard

from railguard import __version__
from railguard.backup.engine import explain_failure, prepare_directory
from railguard.backup.log import LOG_NAME
from railguard.backup.naming import logged_file_names, stem_for
from railguard.backup.priority import background_priority
from railguard.backup.snapshot import SnapshotInfo, check_source, take_snapshot
from railguard.backup.verify import remove_stale_verify_copies
from railguard.config import BackupSettings
from railguard.durable import WorkDirectory
from railguard.errors import RailguardError, VerifyFailed
from railguard.locking import exclusive_lock
from railguard.logfmt import append_line
from railguard.pages.faults import fault_point
from railguard.pages.catalog import list_generations
from railguard.pages.gc import Collection, collect_garbage
from railguard.pages.rebuild import RebuiltCheckFailed, rebuild_generation
from railguard.pages.store import (
    LIST_SUFFIX, LISTS_DIR, PACK_BYTES, PACK_SUFFIX, PACKS_DIR, BadPack, GenerationManifest, encode_page_list,
    encode_pack, free_generation_id, generation_file_name, pack_names, pack_path, prepare_store,
    read_pack_header, store_for,
)
from railguard.progress import Progress, stage_counter

RAW_NAME = "raw.sqlite3"
MANIFEST_NAME = "generation.json"
#: zstd level of the packs when [backup] level is not set (zstd's own default).
DEFAULT_LEVEL = 3


@dataclass
class GenerationResult:
    path: Path  # the manifest
    manifest: GenerationManifest
    collection: Collection
    warnings: list[str] = field(default_factory=list)


def take_generation(database: Path, settings: BackupSettings, *, now: datetime, tz: str = "UTC",
                    progress: Progress | None = None, app: str | None = None) -> GenerationResult:
    """Take one verified generation of ``database`` into its page store in ``settings.directory``."""
    check_source(database)
    directory = settings.directory
    prepare_directory(directory)
    stem = stem_for(database)
    store = store_for(directory, stem)
    with exclusive_lock(directory / f".{stem}.lock", f"backups of {database}"):
        try:
            prepare_store(store)
            remove_stale_verify_copies(directory)
            collection = collect_garbage(store)
        except OSError as exc:
            raise explain_failure(exc, database, store) from exc
        generation_id = free_generation_id(store, stem, now.astimezone(ZoneInfo(tz)),
                                           logged_file_names(directory / LOG_NAME))
        final = generation_file_name(generation_id)
        warnings = [collection.held_back] if collection.held_back else []
        started = time.monotonic()
        fields: dict[str, Any] = {"time": now.astimezone(timezone.utc), "database": database, "file": final,
                                  "kind": "pages"}
        try:
            with WorkDirectory(directory) as workspace:
                manifest = _take(database, settings, workspace, store, str(generation_id), now, progress, warnings)
                manifest.app = app
                manifest.durations["total"] = round(time.monotonic() - started, 3)
                _publish(workspace, store, manifest, final)
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__
            with contextlib.suppress(OSError):
                append_line(directory / LOG_NAME, {**fields, "result": "failed", "error": reason,
                                                   "total_s": round(time.monotonic() - started, 3)})
            raise explain_failure(exc, database, directory) from exc
        append_line(directory / LOG_NAME, {
            **fields, "result": "ok", "size_raw": manifest.size_raw, "pages": manifest.page_count,
            "new_pages": manifest.new_pages, "size_stored": manifest.new_bytes, "check": manifest.check,
            "check_result": manifest.check_result, "wal_bytes": manifest.wal_bytes,
            **{f"{k}_s": v for k, v in manifest.durations.items()},
        })
        return GenerationResult(store / final, manifest, collection, warnings)


def _take(database: Path, settings: BackupSettings, workspace: WorkDirectory, store: Path, name: str,
          now: datetime, progress: Progress | None, warnings: list[str]) -> GenerationManifest:
    known, damaged = _pages_in_store(store)
    if damaged:
        broken = sorted(record.name for record in list_generations(store.parent, stem_for(database))
                        if record.manifest is not None and set(record.manifest.packs) & set(damaged))
        warnings.append(f"pack {damaged[0][:12]} is damaged{f' (and {len(damaged) - 1} more)' if len(damaged) > 1 else ''}"
                        f": the pages this generation needs from it were stored again (over it, when they "
                        f"make the same pack); generations that named it: {', '.join(broken) or 'none'}; "
                        f"run railguard backups verify --all")
    raw_fd = workspace.create(RAW_NAME)  # 0600 before SQLite sees it: an empty file is a new database
    os.close(raw_fd)
    raw = workspace.route(RAW_NAME)
    snapshot = take_snapshot(database, raw, method=settings.method,
                             busy_timeout=settings.busy_timeout.total_seconds(), progress=progress)
    fault_point("snapshot")
    schema_version, user_version = _cookies(raw)
    durations = {"copy": round(snapshot.seconds, 3)}

    with background_priority():  # the read transaction has ended: from here on the app goes first
        return _pack_and_verify(database, settings, workspace, store, name, now, progress, known, snapshot,
                                (schema_version, user_version), durations)


def _pack_and_verify(database: Path, settings: BackupSettings, workspace: WorkDirectory, store: Path, name: str,
                     now: datetime, progress: Progress | None, known: dict[bytes, str], snapshot: SnapshotInfo,
                     cookies: tuple[int, int], durations: dict[str, float]) -> GenerationManifest:
    schema_version, user_version = cookies
    raw = workspace.route(RAW_NAME)
    started = time.monotonic()
    packer = _Packer(workspace, store, snapshot.page_size, settings.level or DEFAULT_LEVEL)
    pages: list[bytes] = []
    packs: set[str] = set()
    whole = hashlib.sha256()
    count = stage_counter(progress, "hash", snapshot.page_size * snapshot.page_count)
    with raw.open("rb") as copy:
        while page := copy.read(snapshot.page_size):
            whole.update(page)
            digest = hashlib.sha256(page).digest()
            pages.append(digest)
            holder = known.get(digest)
            if holder is None:
                packer.add(digest, page)
            else:
                packs.add(holder)
            if count:
                count(len(page))
    packer.flush()
    packs.update(packer.written)
    listed = encode_page_list(snapshot.page_size, b"".join(pages), packer.level)
    page_list, new_list = _store_object(workspace, store, LISTS_DIR, LIST_SUFFIX, listed)
    list_bytes = len(listed) if new_list else 0
    fault_point("list")
    durations["pack"] = round(time.monotonic() - started, 3)

    manifest = GenerationManifest(
        name=name, source=str(database.absolute()), created_at=now.astimezone(timezone.utc).isoformat(timespec="seconds"),
        sqlite_version=sqlite3.sqlite_version, page_size=snapshot.page_size, page_count=len(pages),
        schema_version=schema_version, user_version=user_version, journal_mode=snapshot.journal_mode,
        page_list=page_list, packs=sorted(packs), raw_sha256=whole.hexdigest(), new_pages=packer.pages,
        new_bytes=packer.bytes + list_bytes, check=settings.check, check_result="", verified=False, durations=durations,
        wal_bytes=snapshot.wal_bytes, railguard_version=__version__,
    )
    os.unlink(RAW_NAME, dir_fd=workspace.fd)  # the rebuilt copy below needs the space
    started = time.monotonic()
    try:
        with rebuild_generation(store, manifest, store.parent, mode=settings.check, progress=progress) as rebuilt:
            manifest.check_result = rebuilt.check.summary
    except RebuiltCheckFailed as exc:
        # The rebuilt file is byte for byte the copy: it is the source that is damaged.
        raise VerifyFailed(f"the copy of {database} failed {settings.check}_check: {exc.summary}; "
                           f"generation {name} was not kept",
                           hint="The source database is damaged: inspect it with sqlite3 and restore a good "
                                "backup") from exc
    manifest.verified = True
    durations["verify"] = round(time.monotonic() - started, 3)
    fault_point("verified")
    return manifest


def _pages_in_store(store: Path) -> tuple[dict[bytes, str], list[str]]:
    """Every page digest the store's intact packs hold -> the pack that holds it; and the damaged packs.

    A pack is intact when its bytes hash to its name (reading the compressed file, not
    decompressing it). A damaged one does not count: its pages are stored again, so one bad
    pack breaks only the generations that already named it, never every generation after it.
    """
    known: dict[bytes, str] = {}
    damaged = []
    for pack in pack_names(store):
        path = pack_path(store, pack)
        intact = _intact(path, pack)
        try:
            digests = read_pack_header(path)[1] if intact else []
        except (BadPack, OSError):
            intact = False
        if not intact:
            damaged.append(pack)
            continue
        for digest in digests:
            known.setdefault(digest, pack)
    return known, damaged


def _intact(path: Path, digest: str) -> bool:
    """The pack file at ``path`` hashes to its name ``digest`` (False when it cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest() == digest
    except OSError:
        return False


def _cookies(raw: Path) -> tuple[int, int]:
    connection = sqlite3.connect(raw, isolation_level=None)
    try:
        return (connection.execute("PRAGMA schema_version").fetchone()[0],
                connection.execute("PRAGMA user_version").fetchone()[0])
    finally:
        connection.close()


class _Packer:
    """Collects new pages and writes them out, a pack at a time, durably, before any manifest names them."""

    def __init__(self, workspace: WorkDirectory, store: Path, page_size: int, level: int) -> None:
        self.workspace = workspace
        self.store = store
        self.page_size = page_size
        self.level = level
        self.compressor = zstandard.ZstdCompressor(level=level)
        self.digests: list[bytes] = []
        self.buffer: list[bytes] = []
        self.pending: set[bytes] = set()
        self.written: list[str] = []
        self.pages = 0
        self.bytes = 0

    def add(self, digest: bytes, page: bytes) -> None:
        if digest in self.pending:
            return  # the same page twice in one generation (zeros, say): stored once
        self.pending.add(digest)
        self.digests.append(digest)
        self.buffer.append(page)
        if len(self.buffer) * self.page_size >= PACK_BYTES:
            self._write()

    def flush(self) -> None:
        if self.buffer:
            self._write()

    def _write(self) -> None:
        data = encode_pack(self.page_size, self.digests, self.compressor.compress(b"".join(self.buffer)))
        name, _ = _store_object(self.workspace, self.store, PACKS_DIR, PACK_SUFFIX, data)  # counted even if held
        self.written.append(name)
        self.pages += len(self.digests)
        self.bytes += len(data)
        self.digests, self.buffer = [], []
        fault_point("pack")


def _store_object(workspace: WorkDirectory, store: Path, directory: str, suffix: str, data: bytes) -> tuple[str, bool]:
    """Make ``data`` durable as ``<directory>/<its sha256><suffix>`` in the store before anything names it:
    written, fsynced, linked, the directory fsynced. Returns the name, and whether the store did not
    hold those bytes already."""
    name = hashlib.sha256(data).hexdigest()
    temporary = f"{directory}-{name}"
    with os.fdopen(workspace.create(temporary), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    directory_fd = os.open(store / directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            workspace.link_out(temporary, directory_fd, f"{name}{suffix}")
        except FileExistsError:
            # The same bytes were stored before: the same name. If the file there no longer
            # hashes to it (damaged at rest), these good bytes take its place, atomically,
            # which also mends every generation that named it.
            if not _intact(store / directory / f"{name}{suffix}", name):
                workspace.move_out(temporary, directory_fd, f"{name}{suffix}")
                return name, True
            os.unlink(temporary, dir_fd=workspace.fd)
            return name, False
        os.unlink(temporary, dir_fd=workspace.fd)
        return name, True
    finally:
        os.close(directory_fd)


def _publish(workspace: WorkDirectory, store: Path, manifest: GenerationManifest, final: str) -> None:
    with os.fdopen(workspace.create(MANIFEST_NAME), "wb") as handle:
        handle.write(manifest.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    store_fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            workspace.link_out(MANIFEST_NAME, store_fd, final)
        except FileExistsError:
            raise RailguardError(f"generation {final} exists already in {store}",
                                 hint="Another railguard wrote it meanwhile; run the backup again") from None
    finally:
        os.close(store_fd)
    fault_point("published")
