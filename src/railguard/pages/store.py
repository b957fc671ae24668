"""The page store of one database: generation manifests, their page lists and the packs of pages.

Layout, inside the app's backup directory (docs/pages.md is the reference)::

    <stem>.pages/
        <stem>-YYYYMMDD-HHmm[-N].generation.json   one manifest per generation
        lists/<sha256>.list                         the page list of a generation, named by its sha256
        packs/<sha256>.pack                         pages, each pack named by its own sha256

A **pack** is one file::

    b"RGPACK1\\n"            8 bytes, the format
    page size                4 bytes, big-endian
    page count N             4 bytes, big-endian
    N x sha256 of a page     32 bytes each, in the order of the pages below
    one zstd frame           the N pages, each exactly ``page size`` bytes

The digests are outside the compressed frame, so the writer learns which pages the store
already holds by reading headers only, never by decompressing a gigabyte. A pack's name is the
sha256 of the whole file: a pack damaged at rest is found by hashing it, without the manifest.

A **page list** is one file in the same shape: ``b"RGLIST1\\n"``, page size and page count
(4 bytes each, big-endian), then one zstd frame of the N raw 32-byte sha256 of the database's
pages, page 1 first. It is named by the sha256 of the file, like a pack.

A **generation manifest** (format 2) names its page list (``page_list``) and the packs that hold
those pages; it is the only thing that makes a list or a pack needed. It stays a few hundred
bytes whatever the database's size, so a listing (``backups list``, ``status``) reads manifests
only and never a page list. A format-1 manifest, as the first landing wrote them, carries the
digests inline (``pages``, hex); both read, rebuild and are collected alike
(:func:`page_digests`, :func:`objects_of`).

The writer gives a manifest its name only after every object it names is durable and the
generation has been checked on its materialization from the store (:mod:`railguard.pages.writer`),
so a manifest with its final name always describes a restorable, verified database. Anything
else in the store (a pack or list no manifest names, a hidden work directory) is what a killed
run left, and the next run removes it (:mod:`railguard.pages.gc`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from railguard.backup.manifest import (
    BadManifest, _aware_time, _count, _durations, _flag, _integer, _optional, _Refused, _text, _wrong,
    checked_fields, decode_document,
)
from railguard.backup.naming import FAILED_DIR, BackupId, id_for, parse_name
from railguard.durable import make_private_directory
from railguard.pages import STORE_SUFFIX

#: What the writer writes; :data:`FORMATS` are what reads (1: the page list inline).
FORMAT = 2
FORMATS = (1, 2)
KIND = "pages"
PACK_MAGIC = b"RGPACK1\n"
LIST_MAGIC = b"RGLIST1\n"
_SIZES = struct.Struct(">II")  # after the magic: page size, page count
DIGEST_BYTES = 32
PACKS_DIR = "packs"
PACK_SUFFIX = ".pack"
LISTS_DIR = "lists"
LIST_SUFFIX = ".list"
GENERATION_SUFFIX = ".generation.json"
#: Uncompressed page bytes per pack: big enough that a gigabyte is a few dozen files, small
#: enough that rebuilding holds one pack in memory at a time.
PACK_BYTES = 32 * 1024 * 1024
#: SQLite's page sizes (sqlite.org/fileformat2.html, 1.3.2): a power of two, 512 to 65536.
PAGE_SIZES = frozenset(1 << bits for bits in range(9, 17))

_HEX = re.compile(r"^[0-9a-f]{64}$")
_PACK_NAME = re.compile(r"^(?P<digest>[0-9a-f]{64})\.pack$")
_LIST_NAME = re.compile(r"^(?P<digest>[0-9a-f]{64})\.list$")
_GENERATION_NAME = re.compile(
    r"^(?P<stem>.+)-(?P<date>\d{8})-(?P<time>\d{4})(?:-(?P<seq>[2-9]|[1-9]\d+))?\.generation\.json$")


class BadPack(ValueError):
    """A pack whose bytes do not match its name or its own header; ``str()`` says which."""


class BadPageList(ValueError):
    """A page list whose bytes do not match its name, its header or its manifest; ``str()`` says which."""


# The checks of the fields that are the store's own; the others are backup/manifest.py's, so
# a reason reads the same (pydantic strict mode's words) for both kinds of manifest.
def _digest(value: Any) -> str:
    text = _text(value)
    if not _HEX.match(text):
        raise _wrong(f"not a sha256 in lower-case hex: {text[:70]!r}")
    return text


def _digest_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _wrong("Input should be a valid list", got=value)
    problems: list[tuple[tuple[str, ...], str]] = []
    for index, each in enumerate(value):
        try:
            _digest(each)
        except _Refused as refused:
            problems += [((str(index), *where), detail) for where, detail in refused.problems]
    if problems:
        raise _Refused(problems)
    return value


def _inline_digests(values: Any) -> list[str]:
    # Format 1's inline page list. One check over the whole list: a gigabyte's generation lists
    # 262,144 pages, and checking them one by one would make every listing of the backups slow.
    if not isinstance(values, list) or not all(isinstance(value, str) and len(value) == 64 for value in values):
        raise _wrong("not a list of sha256 digests in lower-case hex")
    joined = "".join(values)
    try:
        decoded = bytes.fromhex(joined)  # C speed; it skips whitespace, hence the length check
    except ValueError:
        decoded = b""
    if len(decoded) != 32 * len(values) or joined != joined.lower():
        raise _wrong("not a list of sha256 digests in lower-case hex")
    return values


def _page_size(value: Any) -> int:
    size = _integer(value)
    if size not in PAGE_SIZES:
        raise _wrong(f"not a SQLite page size: {size}")
    return size


@dataclass
class GenerationManifest:
    """One generation: what the database held, page by page, and how it was verified."""

    # Each field's check is in _CHECKS below; keys we do not know are ignored.
    name: str
    source: str
    created_at: str  # ISO 8601 with its offset (UTC when railguard writes it)
    sqlite_version: str
    page_size: int
    page_count: int
    #: ``PRAGMA schema_version`` (the header's schema cookie) and ``PRAGMA user_version``.
    schema_version: int
    user_version: int
    journal_mode: str  # of the source; a restore puts WAL back
    #: The packs (names without ``.pack``) that hold those pages, every one of them needed.
    packs: list[str]
    #: sha256 of the whole rebuilt database file (page 1 to the last page).
    raw_sha256: str
    #: Pages and stored bytes this generation added to the store (0 when nothing changed).
    new_pages: int
    new_bytes: int
    check: str
    check_result: str
    verified: bool
    durations: dict[str, float] = field(default_factory=dict)
    wal_bytes: int = 0
    railguard_version: str = ""
    app: str | None = None
    #: Format 2: the page list (its sha256, the name of ``lists/<sha256>.list``).
    page_list: str | None = None
    #: Format 1 only: the sha256 of every page in hex, page 1 first (:func:`page_digests` reads both).
    pages: list[str] | None = None
    kind: str = KIND
    format: int = FORMAT

    @property
    def size_raw(self) -> int:
        return self.page_size * self.page_count

    @property
    def size_stored(self) -> int:
        """What this generation added to the store (a whole-file backup's ``size_stored``)."""
        return self.new_bytes

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def to_json(self) -> bytes:
        document = asdict(self)
        for absent in ("page_list", "pages"):  # one of them, by format
            if document[absent] is None:
                del document[absent]
        return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes | str) -> GenerationManifest:
        """The one parser of generation manifests; :class:`BadManifest` names what is wrong."""
        manifest = cls(**checked_fields(decode_document(data), _CHECKS, _REQUIRED))
        if manifest.kind != KIND or manifest.format not in FORMATS:
            raise BadManifest(f"kind {manifest.kind!r} format {manifest.format}: not a generation of format "
                              f"{' or '.join(map(str, FORMATS))}")
        if manifest.format == 1:
            if manifest.pages is None:
                raise BadManifest("pages: missing")
            if len(manifest.pages) != manifest.page_count:
                raise BadManifest(f"pages: {len(manifest.pages)} digests for page_count {manifest.page_count}")
            manifest.page_list = None
        else:
            if manifest.page_list is None:
                raise BadManifest("page_list: missing")
            manifest.pages = None  # format 2 has its list in the store; an inline one is not trusted
        return manifest


#: Each field of :class:`GenerationManifest`, in its order, and the check its value must pass.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "name": _text, "source": _text, "created_at": _aware_time, "sqlite_version": _text, "page_size": _page_size,
    "page_count": _count, "schema_version": _integer, "user_version": _integer, "journal_mode": _text,
    "packs": _digest_list, "raw_sha256": _digest, "new_pages": _count, "new_bytes": _count, "check": _text,
    "check_result": _text, "verified": _flag, "durations": _durations, "wal_bytes": _count,
    "railguard_version": _text, "app": _optional(_text), "page_list": _optional(_digest),
    "pages": _optional(_inline_digests), "kind": _text, "format": _integer,
}
_REQUIRED = {each.name for each in fields(GenerationManifest)
             if each.default is MISSING and each.default_factory is MISSING}


def store_for(directory: Path, stem: str) -> Path:
    """The page store of the database ``stem`` inside the backup directory ``directory``."""
    return directory / f"{stem}{STORE_SUFFIX}"


def prepare_store(store: Path) -> None:
    make_private_directory(store)
    make_private_directory(store / PACKS_DIR)
    make_private_directory(store / LISTS_DIR)


def generation_file_name(generation_id: BackupId) -> str:
    return f"{generation_id}{GENERATION_SUFFIX}"


def parse_generation_name(name: str, stem: str | None = None) -> BackupId | None:
    match = _GENERATION_NAME.match(name)
    if not match or (stem is not None and match["stem"] != stem):
        return None
    return BackupId(match["stem"], match["date"], match["time"], int(match["seq"] or 1))


def generation_names(store: Path) -> list[str]:
    """The file names of the generation manifests in ``store`` (any stem), unsorted."""
    try:
        return [entry.name for entry in os.scandir(store)
                if parse_generation_name(entry.name) is not None and entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def free_generation_id(store: Path, stem: str, local_now: datetime, logged: Iterable[str] = ()) -> BackupId:
    """A name no generation or whole-file backup of ``stem`` has had in that minute."""
    minute = id_for(stem, local_now)
    highest = 0
    names = [*generation_names(store), *logged]  # whole-file backups share the name space
    for place in (store.parent, store.parent / FAILED_DIR):
        if place.is_dir():
            names.extend(entry.name for entry in place.iterdir())
    for name in names:
        parsed = parse_generation_name(name, stem)
        if parsed is None:
            whole = parse_name(name, stem)
            parsed = whole[0] if whole else None
        if parsed and (parsed.date, parsed.time) == (minute.date, minute.time):
            highest = max(highest, parsed.seq)
    return id_for(stem, local_now, highest + 1)


def _names_in(directory: Path, pattern: re.Pattern[str]) -> list[str]:
    try:
        return sorted(match["digest"] for entry in os.scandir(directory)
                      if (match := pattern.match(entry.name)) and entry.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []


def pack_names(store: Path) -> list[str]:
    """The digests of the packs in ``store`` (final names only; temporaries are never there)."""
    return _names_in(store / PACKS_DIR, _PACK_NAME)


def list_names(store: Path) -> list[str]:
    """The digests of the page lists in ``store``."""
    return _names_in(store / LISTS_DIR, _LIST_NAME)


def pack_path(store: Path, digest: str) -> Path:
    return store / PACKS_DIR / f"{digest}{PACK_SUFFIX}"


def list_path(store: Path, digest: str) -> Path:
    return store / LISTS_DIR / f"{digest}{LIST_SUFFIX}"


def objects_of(manifest: GenerationManifest) -> list[str]:
    """The store's files, relative to the store, that ``manifest`` needs besides itself.

    One place says what a generation is made of, so that whatever copies, collects or checks
    a store (destinations, GC) follows a change of format without knowing it: its packs, then
    (format 2) its page list.
    """
    objects = [f"{PACKS_DIR}/{digest}{PACK_SUFFIX}" for digest in manifest.packs]
    if manifest.page_list is not None:
        objects.append(f"{LISTS_DIR}/{manifest.page_list}{LIST_SUFFIX}")
    return objects


def encode_page_list(page_size: int, digests: bytes, level: int) -> bytes:
    """A page list's file: ``digests`` is the N raw 32-byte sha256 of the pages, concatenated."""
    import zstandard

    return (LIST_MAGIC + _SIZES.pack(page_size, len(digests) // DIGEST_BYTES)
            + zstandard.ZstdCompressor(level=level).compress(digests))


def page_digests(store: Path, manifest: GenerationManifest) -> bytes:
    """The raw sha256 of every page of ``manifest``, concatenated (32 bytes each, page 1 first).

    Format 1 has them inline; format 2 reads its page list (:func:`read_page_list`).
    """
    if manifest.page_list is None:
        return bytes.fromhex("".join(manifest.pages or ()))
    return read_page_list(list_path(store, manifest.page_list), manifest.page_list, manifest.page_size,
                          manifest.page_count)


def read_page_list(path: Path, digest: str, page_size: int, page_count: int) -> bytes:
    """The digests in the page list ``digest``, whose sha256 must be its name and whose sizes must be
    these: :class:`BadPageList` otherwise, FileNotFoundError when it is not there."""
    import zstandard

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    short = digest[:12]
    if hashlib.sha256(data).hexdigest() != digest:
        raise BadPageList(f"page list {short} does not hash to its name (changed since it was written)")
    head = len(LIST_MAGIC) + _SIZES.size
    if not data.startswith(LIST_MAGIC) or len(data) < head:
        raise BadPageList(f"page list {short} does not start with {LIST_MAGIC!r}")
    sizes = _SIZES.unpack(data[len(LIST_MAGIC):head])
    if sizes != (page_size, page_count):
        raise BadPageList(f"page list {short} is for {sizes[1]} pages of {sizes[0]} bytes, the generation has "
                          f"{page_count} of {page_size}")
    try:
        digests = zstandard.ZstdDecompressor().decompress(data[head:], max_output_size=page_count * DIGEST_BYTES)
    except zstandard.ZstdError as exc:
        raise BadPageList(f"page list {short} does not decompress ({exc})") from None
    if len(digests) != page_count * DIGEST_BYTES:
        raise BadPageList(f"page list {short} holds {len(digests)} bytes, not {page_count} digests")
    return digests


def encode_pack(page_size: int, digests: list[bytes], compressed_pages: bytes) -> bytes:
    return PACK_MAGIC + _SIZES.pack(page_size, len(digests)) + b"".join(digests) + compressed_pages


def read_pack_header(path: Path) -> tuple[int, list[bytes]]:
    """(page size, the digests of its pages) from a pack's header, without decompressing it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        head = handle.read(len(PACK_MAGIC) + _SIZES.size)
        page_size, count = _parse_sizes(head, path.name)
        table = handle.read(count * DIGEST_BYTES)
    if len(table) != count * DIGEST_BYTES:
        raise BadPack(f"pack {path.name} is cut short in its header")
    return page_size, [table[i:i + DIGEST_BYTES] for i in range(0, len(table), DIGEST_BYTES)]


def _parse_sizes(head: bytes, name: str) -> tuple[int, int]:
    if len(head) != len(PACK_MAGIC) + _SIZES.size or not head.startswith(PACK_MAGIC):
        raise BadPack(f"pack {name} does not start with {PACK_MAGIC!r}")
    page_size, count = _SIZES.unpack(head[len(PACK_MAGIC):])
    if page_size not in PAGE_SIZES:
        raise BadPack(f"pack {name} has page size {page_size}")
    return page_size, count


def read_pack(path: Path, digest: str) -> Iterator[tuple[bytes, bytes]]:
    """Every ``(sha256, page)`` of the pack ``digest``, each page checked against its sha256.

    The file is read once, whole (a pack is at most :data:`PACK_BYTES` of pages), and its own
    sha256 must be its name: a pack changed since it was written raises :class:`BadPack`.
    """
    page_size, count, table, pages = _open_pack(path, digest)
    for index in range(count):
        page = pages[index * page_size:(index + 1) * page_size]
        expected = table[index * DIGEST_BYTES:(index + 1) * DIGEST_BYTES]
        if hashlib.sha256(page).digest() != expected:
            raise BadPack(f"pack {digest[:12]}: page {index} does not match its sha256")
        yield expected, page


def read_published_pack(path: Path, digest: str) -> Iterator[tuple[bytes, memoryview]]:
    """Every ``(sha256, page)`` of a pack a published generation names, pages not hashed one by one.

    What proves them: the file must hash to its name (as in :func:`read_pack`), so it holds the
    bytes it was written with, and a generation is published only after every page of its new
    packs was read back and matched its sha256 (pages/writer.py, step 5). Hashing each page
    again proves nothing more, and a rebuild checks the whole file's ``raw_sha256`` at the end
    in any case. Pages are views into the pack's decompressed bytes, not copies.
    """
    page_size, count, table, pages = _open_pack(path, digest)
    view = memoryview(pages)
    for index in range(count):
        yield table[index * DIGEST_BYTES:(index + 1) * DIGEST_BYTES], view[index * page_size:(index + 1) * page_size]


def _open_pack(path: Path, digest: str) -> tuple[int, int, bytes, bytes]:
    """A pack's page size, page count, digest table and decompressed pages; BadPack unless it hashes to ``digest``."""
    import zstandard

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise BadPack(f"pack {digest[:12]} does not hash to its name (changed since it was written)")
    page_size, count = _parse_sizes(data[:len(PACK_MAGIC) + _SIZES.size], path.name)
    start = len(PACK_MAGIC) + _SIZES.size
    table = data[start:start + count * DIGEST_BYTES]
    try:
        pages = zstandard.ZstdDecompressor().decompress(data[start + count * DIGEST_BYTES:],
                                                        max_output_size=count * page_size)
    except zstandard.ZstdError as exc:
        raise BadPack(f"pack {digest[:12]} does not decompress ({exc})") from None
    if len(pages) != count * page_size:
        raise BadPack(f"pack {digest[:12]} holds {len(pages)} bytes, not {count} pages of {page_size}")
    return page_size, count, table, pages


def as_dict(manifest: GenerationManifest) -> dict[str, Any]:
    """The manifest without a format-1 inline page list, for ``--json`` and logs."""
    document = asdict(manifest)
    document.pop("pages")
    return document
