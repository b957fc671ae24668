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
   run at a time), remove work directories killed runs left, and collect garbage: packs and
   page lists that no manifest names (a killed run wrote them) go now (:mod:`railguard.pages.gc`).
2. Read the packs in the store: which pages it already holds. A pack that does not hash to its
   name is damaged and does not count: its pages are stored again (a warning names the
   generations that named it), so one bad pack never fails every backup after it; when they
   make the very same pack, the good bytes replace the damaged file and mend those generations.
3. Copy the database (backup API, one step) into a private work directory.
4. Hash the copy page by page, and whole (the manifest's ``raw_sha256``: these pages in this
   order are the generation, what every later rebuild must give); pages the store lacks go
   into new packs, each compressed, named by its sha256, and made durable (paced writes, fsync,
   link into ``packs/``, fsync the directory) on a worker thread while the next is collected,
   all of them before anything names them; then the page list, the same way (``lists/``),
   written on that thread while step 5 runs, and durable before step 6.
5. Make the copy into the generation **materialized from the store**, in place, and check it:
   every new page is read back from its new pack (the file must hash to its name, every page
   must match its digest: :func:`railguard.pages.store.read_pack`), written over its own
   offsets and read back from there; then ``quick_check`` (or the ``check`` setting's:
   :func:`generation_check`) runs on that file.
6. Only then give the manifest its name (written, fsynced, linked, directory fsynced), and log.

Steps 2 to 5 run at background priority (:mod:`railguard.backup.priority`), so the app's
commits do not queue behind our copying and hashing; the copy of step 3, which holds a read
transaction on the live database, only for its first :data:`COPY_AT_IDLE` seconds, then at
normal priority, so a busy machine cannot stretch that transaction. The packs reach the disk
paced (:func:`~railguard.backup.priority.paced_write`), so the app's commit fsyncs do not
queue behind our writes either, and the hashing pauses between megabytes (:data:`HASH_PAUSE`).
One check runs at a time: nothing of ours holds both cores while the app waits for one.

Why step 5 checks the generation as the store holds it, without rebuilding it whole. After
it, every page of the file is one of two kinds. A *new* page was written from the bytes its
new pack holds on disk, decompressed and found equal to its digest. Every *other* page is
the copy's own bytes, and their sha256 is a digest in the header of a pack that, in step 2 of
this run, hashed to its name (so its header and pages are the bytes written then), and whose
pages were checked against that header when it was written: by step 5 of the run that wrote
it (or a whole rebuild, before this way). Step 2 counts only packs a readable manifest names,
and a manifest is published only after that check; an orphan a held-back GC kept counts for
nothing. So the pack holds those very bytes (sha256 has no known collisions), and the file is,
page for page, what rebuilding the generation from the store gives, and its whole sha256 is the
one step 4 took (a new page read back equal to its digest is the bytes hashed then; no other
page is written), so the file is not read a second time to hash it. The page list is read back
too and must be the digests hashed here. Reading each new page back from its offsets catches
one written at a wrong place. What this saves is decompressing and hashing every old page and
writing a second file: an extra generation reads back only its new pages and its list.
``backups verify``, restore and drills still rebuild generations whole from the store
(:mod:`railguard.pages.rebuild`).

``kill -9`` anywhere leaves every earlier generation as it was (nothing they name is ever
written or removed here but by the GC of step 1, which keeps every object a manifest names)
and at most packs, a page list and work directories that the next run removes.
"""

from __future__ import annotations

import concurrent.futures
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
from railguard.backup.priority import background_priority, paced_write, run_in_background
from railguard.backup.snapshot import SnapshotInfo, check_source, take_snapshot
from railguard.backup.verify import check_database, remove_stale_verify_copies
from railguard.config import BackupSettings
from railguard.durable import WorkDirectory
from railguard.errors import RailguardError, VerifyFailed
from railguard.locking import exclusive_lock
from railguard.logfmt import append_line
from railguard.pages.faults import fault_point
from railguard.pages.catalog import list_generations
from railguard.pages.gc import Collection, collect_garbage, referenced_objects
from railguard.pages.rebuild import DAMAGED_HINT
from railguard.pages.store import (
    LIST_SUFFIX, LISTS_DIR, PACK_BYTES, PACK_SUFFIX, PACKS_DIR, BadPack, BadPageList, GenerationManifest, encode_page_list,
    encode_pack, free_generation_id, generation_file_name, pack_names, pack_path, prepare_store,
    list_path, read_pack, read_pack_header, read_page_list, store_for,
)
from railguard.progress import Progress, finish, stage_counter

RAW_NAME = "raw.sqlite3"
MANIFEST_NAME = "generation.json"
#: zstd level of the packs when [backup] level is not set (zstd's own default).
DEFAULT_LEVEL = 3
#: The check of a generation when [backup] check is not set (:func:`generation_check` says why).
DEFAULT_CHECK = "quick"
#: Seconds the copy of the live database runs at background priority before it is raised to
#: normal (a 1 GB copy takes about 3 s on the benchmark's idle machine).
COPY_AT_IDLE = 10.0
#: Bytes of the copy read at a time while hashing its pages.
READ_BYTES = 1024 * 1024
#: Seconds the hashing sleeps after each READ_BYTES. Streaming the copy through the CPU without a
#: break put the app's commit p99 at 1.4 to 1.7x idle even at SCHED_IDLE (on the other core, through
#: the caches they share); a break of 0.3 to 1 ms a megabyte kept it at idle's (docs/pages.md).
HASH_PAUSE = 0.0005


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
    with background_priority():  # reading and hashing every pack: the app goes first
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
    # The copy holds a read transaction on the live database: at background priority too, for
    # at most COPY_AT_IDLE seconds, then at normal priority (background_priority says why).
    with background_priority(at_most=COPY_AT_IDLE):
        snapshot = take_snapshot(database, raw, method=settings.method,
                                 busy_timeout=settings.busy_timeout.total_seconds(), progress=progress)
    fault_point("snapshot")
    durations = {"copy": round(snapshot.seconds, 3)}

    with background_priority():  # the read transaction has ended: from here on the app goes first
        manifest = _pack_and_verify(database, settings, workspace, store, name, now, progress, known, snapshot,
                                    _cookies(raw), durations)
        # The checked copy is no longer needed: its page cache (the database's size) is freed
        # here, at background priority, not when the work directory goes (measured: a 50 ms
        # commit of the app while a 1 GB copy was unlinked at normal priority).
        os.unlink(RAW_NAME, dir_fd=workspace.fd)
        return manifest


def _pack_and_verify(database: Path, settings: BackupSettings, workspace: WorkDirectory, store: Path, name: str,
                     now: datetime, progress: Progress | None, known: dict[bytes, str], snapshot: SnapshotInfo,
                     cookies: tuple[int, int], durations: dict[str, float]) -> GenerationManifest:
    schema_version, user_version = cookies
    page_size = snapshot.page_size
    started = time.monotonic()
    pages: list[bytes] = []
    packs: set[str] = set()
    fresh: dict[bytes, list[int]] = {}  # each page the store lacked -> the page numbers that hold it
    count = stage_counter(progress, "hash", page_size * snapshot.page_count)
    fd = os.open(RAW_NAME, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=workspace.fd)
    try:
        # A megabyte at a time, pages sliced out of it: one read per 256 pages of 4 KiB, and a
        # page is copied out of the chunk only when it goes into a pack.
        chunk_pages = max(1, READ_BYTES // page_size)
        offset = 0
        whole = hashlib.sha256()  # the manifest's raw_sha256: these pages, in order, are the generation
        with _Packer(workspace, store, page_size, settings.level or DEFAULT_LEVEL) as packer:
            while chunk := os.pread(fd, chunk_pages * page_size, offset):
                offset += len(chunk)
                whole.update(chunk)
                view = memoryview(chunk)
                for start in range(0, len(chunk), page_size):
                    page = view[start:start + page_size]
                    digest = hashlib.sha256(page).digest()
                    holder = known.get(digest)
                    if holder is None:
                        packer.add(digest, bytes(page))
                        fresh.setdefault(digest, []).append(len(pages))
                    else:
                        packs.add(holder)
                    pages.append(digest)
                if count:
                    count(len(chunk))
                time.sleep(HASH_PAUSE)  # a breath for the app between megabytes (HASH_PAUSE says why)
            packer.flush()
            packs.update(packer.written)
            digests = b"".join(pages)
            listed = encode_page_list(page_size, digests, packer.level)
            listing = packer.store_list(listed)  # made durable while the new pages are read back and checked
            durations["pack"] = round(time.monotonic() - started, 3)

            started = time.monotonic()
            _materialize_in_place(store, packer.written, fresh, fd, page_size, name, progress)
            mode = generation_check(settings)
            stage_counter(progress, "check", 0)
            check = check_database(workspace.route(RAW_NAME), mode)
            if not check.ok:
                # Every page is the copy's, byte for byte: it is the source that is damaged.
                raise VerifyFailed(f"the copy of {database} failed {mode}_check: {check.summary}; "
                                   f"generation {name} was not kept",
                                   hint="The source database is damaged: inspect it with sqlite3 and restore a good "
                                        "backup")
            page_list, new_list = listing.result()
        try:
            listed_back = read_page_list(list_path(store, page_list), page_list, page_size, len(pages))
        except BadPageList as exc:
            raise VerifyFailed(f"generation {name}: {exc} right after it was written; it was not kept",
                               hint=_DISK_HINT) from None
        if listed_back != digests:
            raise VerifyFailed(f"generation {name}: its page list does not read back as written; it was not kept",
                               hint=_DISK_HINT)
    finally:
        os.close(fd)
    finish(progress, "check", page_size * len(pages))
    durations["verify"] = round(time.monotonic() - started, 3)
    fault_point("verified")
    return GenerationManifest(
        name=name, source=str(database.absolute()), created_at=now.astimezone(timezone.utc).isoformat(timespec="seconds"),
        sqlite_version=sqlite3.sqlite_version, page_size=page_size, page_count=len(pages),
        schema_version=schema_version, user_version=user_version, journal_mode=snapshot.journal_mode,
        page_list=page_list, packs=sorted(packs), raw_sha256=whole.hexdigest(), new_pages=packer.pages,
        new_bytes=packer.bytes + (len(listed) if new_list else 0), check=mode,
        check_result=check.summary, verified=True, durations=durations, wal_bytes=snapshot.wal_bytes,
        railguard_version=__version__,
    )


def generation_check(settings: BackupSettings) -> str:
    """The check a generation runs: ``check`` when it is set (configuration, ``--check``), else quick_check.

    Why quick by default, for generations only: the file checked is proven, page by page, to be
    the generation as the store holds it (module docstring), so the check asks one question,
    whether the source was sound when copied. quick_check answers it for every page's
    structure (b-trees, cells, overflow chains, the freelist, NOT NULL and CHECK constraints);
    what it skips is whether each index agrees with its table, which is O(N log N) and most of
    integrity_check's time. ``backups verify``, restore and drills still run integrity_check
    (their default) on a generation rebuilt whole, so an index that disagrees is still found
    before anything is restored from it; a generation every ten minutes need not pay for it.
    """
    return settings.check if "check" in settings.model_fields_set else DEFAULT_CHECK


def _materialize_in_place(store: Path, written: list[str], fresh: dict[bytes, list[int]], fd: int, page_size: int,
                          name: str, progress: Progress | None) -> None:
    """Write every new page over its offsets in ``fd`` as its new pack on disk holds it (step 5),
    and read each one back from there: a page written at a wrong place fails the generation."""
    count = stage_counter(progress, "read-back", page_size * sum(map(len, fresh.values())))
    missing = set(fresh)
    for pack in written:
        try:
            for digest, page in read_pack(pack_path(store, pack), pack):
                for number in fresh.get(digest, ()):
                    os.pwrite(fd, page, number * page_size)
                    if hashlib.sha256(os.pread(fd, page_size, number * page_size)).digest() != digest:
                        raise VerifyFailed(f"generation {name}: page {number + 1} did not read back as written; "
                                           f"it was not kept", hint=_DISK_HINT)
                    if count:
                        count(page_size)
                missing.discard(digest)
        except BadPack as exc:
            raise VerifyFailed(f"generation {name}: {exc} right after it was written; it was not kept",
                               hint=_DISK_HINT) from None
    if missing:
        raise VerifyFailed(f"generation {name}: {len(missing)} new page(s) are in none of its new packs; "
                           f"it was not kept", hint=DAMAGED_HINT)


_DISK_HINT = ("The disk or file system under the backup directory loses writes: check it (dmesg, SMART) before "
              "trusting any backup there")


def _pages_in_store(store: Path) -> tuple[dict[bytes, str], list[str]]:
    """Every page digest the store's intact, published packs hold -> the pack that holds it; and the damaged packs.

    A pack counts when a readable manifest names it (only a published generation's packs had
    their pages checked against their header: step 5; an orphan a held-back GC left may not)
    and its bytes hash to its name (reading the compressed file, not decompressing it). A
    damaged one does not count: its pages are stored again, so one bad pack breaks only the
    generations that already named it, never every generation after it.
    """
    known: dict[bytes, str] = {}
    damaged = []
    named, _ = referenced_objects(store)
    for pack in pack_names(store):
        path = pack_path(store, pack)
        if f"{PACKS_DIR}/{path.name}" not in named:
            continue
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
    """Collects new pages and writes them out, a pack at a time, durably, before any manifest names them.

    Each pack is made durable on a worker thread, at background priority, while the pages of the
    next one are hashed: its paced writes spend most of their time asleep, so they overlap the
    hashing instead of adding to it. At most one pack is being written while the next is
    collected. :meth:`flush` returns once every pack is durable (and raises the error of one
    that could not be written); use the packer as a context manager, so that no write is left
    running when the work directory goes.
    """

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
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="railguard-pack")
        self._writing: concurrent.futures.Future[str] | None = None

    def __enter__(self) -> _Packer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)  # a pack still being written finishes before its directory goes

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
        self._wait()

    def _write(self) -> None:
        data = encode_pack(self.page_size, self.digests, self.compressor.compress(b"".join(self.buffer)))
        self._wait()
        self._writing = self._pool.submit(run_in_background, _store_pack, self.workspace, self.store, data)
        self.pages += len(self.digests)
        self.bytes += len(data)  # counted even if the store held it already
        self.digests, self.buffer = [], []

    def store_list(self, data: bytes) -> concurrent.futures.Future[tuple[str, bool]]:
        """Make the page list ``data`` durable on the worker once every pack is: the caller goes on
        meanwhile and takes the result (its name, whether it is new) before anything names it."""
        self.flush()
        return self._pool.submit(run_in_background, _store_list, self.workspace, self.store, data)

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self.written.append(writing.result())


def _store_pack(workspace: WorkDirectory, store: Path, data: bytes) -> str:
    name, _ = _store_object(workspace, store, PACKS_DIR, PACK_SUFFIX, data)
    fault_point("pack")
    return name


def _store_list(workspace: WorkDirectory, store: Path, data: bytes) -> tuple[str, bool]:
    stored = _store_object(workspace, store, LISTS_DIR, LIST_SUFFIX, data)
    fault_point("list")
    return stored


def _store_object(workspace: WorkDirectory, store: Path, directory: str, suffix: str, data: bytes) -> tuple[str, bool]:
    """Make ``data`` durable as ``<directory>/<its sha256><suffix>`` in the store before anything names it:
    written, fsynced, linked, the directory fsynced. Returns the name, and whether the store did not
    hold those bytes already."""
    name = hashlib.sha256(data).hexdigest()
    temporary = f"{directory}-{name}"
    fd = workspace.create(temporary)
    try:
        paced_write(fd, data)  # the app's commits fsync too: never queue ours in front of them at once
        os.fsync(fd)
    finally:
        os.close(fd)
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
