"""Rebuilding a generation from the store into a private file, and proving it is the database.

Order of work, and why:

1. Read the generation's page list (format 2: its object in ``lists/``, which must hash to its
   name; format 1: inline in the manifest) and map every page digest to the page numbers that
   hold it (a page of zeros, or two equal overflow pages, is stored once and written wherever
   it belongs).
2. Make the file, 0600, in a :class:`~railguard.durable.WorkDirectory` inside ``into`` (for a
   restore: the target's directory, so the final rename is atomic), sized to page size x page
   count up front.
3. Read each pack the manifest names once: its sha256 must be its name (its pages were
   matched against their digests before any generation named it:
   :func:`railguard.pages.store.read_published_pack`); each needed page is written at its
   offsets. A page that no named pack holds fails the rebuild.
4. Read the file back: its sha256 must be the manifest's ``raw_sha256`` (the bytes that were
   checked when the generation was made), and ``integrity_check`` (or ``quick_check``) runs
   on this rebuilt file, never only on the source; the two read it side by side, and a wrong
   sha256 is what is reported when both fail.

Any failure raises :class:`~railguard.errors.VerifyFailed` naming the generation and what
broke; the file is removed when the block exits unless the caller moved it out (restore).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from railguard.backup.compression import CHUNK
from railguard.backup.verify import CheckResult, VerifySpaceError, check_database
from railguard.durable import WorkDirectory
from railguard.errors import VerifyFailed
from railguard.pages.store import (
    DIGEST_BYTES, BadPack, BadPageList, GenerationManifest, page_digests, pack_path, read_published_pack,
)
from railguard.progress import Progress, finish, stage_counter

DAMAGED_HINT = "The store is damaged (bit rot or tampering): run railguard backups verify, restore another generation"


class RebuiltCheckFailed(VerifyFailed):
    """Every page matched, and yet integrity_check failed: the database was damaged when it was copied."""

    def __init__(self, message: str, *, hint: str, summary: str) -> None:
        super().__init__(message, hint=hint)
        self.summary = summary


@dataclass
class RebuiltGeneration:
    """A generation rebuilt and checked: ``name`` inside ``workspace``, SQLite opens ``path``."""

    manifest: GenerationManifest
    path: Path
    check: CheckResult
    workspace: WorkDirectory
    name: str


@contextlib.contextmanager
def rebuild_generation(store: Path, manifest: GenerationManifest, into: Path, *, mode: str = "integrity",
                       progress: Progress | None = None) -> Iterator[RebuiltGeneration]:
    """Rebuild ``manifest``'s database from ``store`` into a work directory in ``into``, verified.

    ``progress`` gets ``rebuild`` (bytes of pages written) then ``check``.
    """
    positions = page_positions(store, manifest)
    name = f"{manifest.name}.sqlite3"
    with WorkDirectory(into) as workspace:
        os.close(workspace.create(name))  # 0600, exclusive; then opened for reading back too
        fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=workspace.fd)
        route = workspace.route(name)
        try:
            _write_pages(store, manifest, fd, positions, stage_counter(progress, "rebuild", manifest.size_raw), into)
            finish(progress, "rebuild", manifest.size_raw)
            stage_counter(progress, "check", 0)
            # The whole file's sha256 and the check read the same pages from the page cache, and
            # both let go of the GIL: side by side (the sha256 still decides first, below).
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                whole = pool.submit(sha256_of, fd)
                check = check_database(route, mode)
                raw_sha = whole.result()
        finally:
            os.close(fd)
        if raw_sha != manifest.raw_sha256:
            raise VerifyFailed(f"generation {manifest.name}: the rebuilt database does not match its manifest's sha256",
                               hint=DAMAGED_HINT)
        if not check.ok:
            raise RebuiltCheckFailed(f"generation {manifest.name}: {mode}_check failed on the rebuilt database: "
                                     f"{check.summary}", hint="Every page matched its sha256: the database was "
                                     "already damaged when the generation was taken; restore another generation",
                                     summary=check.summary)
        finish(progress, "check", manifest.size_raw)
        yield RebuiltGeneration(manifest, route, check, workspace, name)


def page_positions(store: Path, manifest: GenerationManifest) -> dict[bytes, list[int]]:
    """Every page digest of ``manifest`` -> the page numbers (from 0) that hold it; VerifyFailed when
    its page list is missing or damaged."""
    try:
        digests = page_digests(store, manifest)
    except FileNotFoundError:
        raise VerifyFailed(f"generation {manifest.name}: page list {(manifest.page_list or '')[:12]} is missing "
                           f"from {store}", hint=DAMAGED_HINT) from None
    except BadPageList as exc:
        raise VerifyFailed(f"generation {manifest.name}: {exc}", hint=DAMAGED_HINT) from None
    positions: dict[bytes, list[int]] = {}
    for number in range(manifest.page_count):
        positions.setdefault(digests[number * DIGEST_BYTES:(number + 1) * DIGEST_BYTES], []).append(number)
    return positions


def _write_pages(store: Path, manifest: GenerationManifest, fd: int, positions: dict[bytes, list[int]],
                 count: Callable[[int], None] | None, into: Path) -> None:
    page_size = manifest.page_size
    missing = set(positions)
    try:
        os.ftruncate(fd, manifest.size_raw)
        for pack in manifest.packs:
            try:
                for digest, page in _pack_pages(store, pack, manifest.name):
                    offsets = positions.get(digest)
                    if offsets is None or digest not in missing:
                        continue
                    if len(page) != page_size:
                        raise VerifyFailed(f"generation {manifest.name}: pack {pack[:12]} holds pages of "
                                           f"{len(page)} bytes, the generation's are {page_size}", hint=DAMAGED_HINT)
                    for number in offsets:
                        os.pwrite(fd, page, number * page_size)
                    missing.discard(digest)
                    if count:
                        count(len(page) * len(offsets))
            except BadPack as exc:
                raise VerifyFailed(f"generation {manifest.name}: {exc}", hint=DAMAGED_HINT) from None
        # No fsync: a copy that is only checked is deleted, and a restore fsyncs the one it keeps
        # (restore/engine.py, _prepare) before it gets the database's name.
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise VerifySpaceError(f"no space left in {into} to rebuild generation {manifest.name}",
                                   hint="Free space there (the rebuilt copy needs the database's size)") from exc
        raise
    if missing:
        raise VerifyFailed(f"generation {manifest.name}: {len(missing)} page(s) are in none of its packs",
                           hint=DAMAGED_HINT)


def _pack_pages(store: Path, pack: str, generation: str) -> Iterator[tuple[bytes, memoryview]]:
    try:
        yield from read_published_pack(pack_path(store, pack), pack)
    except FileNotFoundError:
        raise VerifyFailed(f"generation {generation}: pack {pack[:12]} is missing from {store}",
                           hint=DAMAGED_HINT) from None


def sha256_of(fd: int) -> str:
    """The sha256 of the whole file open at ``fd`` (read with pread: the offset is left alone)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
