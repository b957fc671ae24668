"""The page store of one database: generation manifests and the packs of pages they need.

Layout, inside the app's backup directory (docs/pages.md is the reference)::

    <stem>.pages/
        <stem>-YYYYMMDD-HHmm[-N].generation.json   one manifest per generation
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

A **generation manifest** lists the database's pages in order by their sha256 and the packs
that hold them; it is the only thing that makes a pack needed. The writer gives a manifest its
name only after every pack it names is durable and the generation has been rebuilt from the
store and checked (:mod:`railguard.pages.writer`), so a manifest with its final name always
describes a restorable, verified database. Anything else in the store (a pack no manifest
names, a hidden work directory) is what a killed run left, and the next run removes it
(:mod:`railguard.pages.gc`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, ConfigDict, Field, Strict

from railguard.backup.manifest import BadManifest
from railguard.backup.naming import FAILED_DIR, BackupId, id_for, parse_name
from railguard.durable import make_private_directory
from railguard.pages import STORE_SUFFIX

FORMAT = 1
KIND = "pages"
PACK_MAGIC = b"RGPACK1\n"
_SIZES = struct.Struct(">II")  # after the magic: page size, page count
DIGEST_BYTES = 32
PACKS_DIR = "packs"
PACK_SUFFIX = ".pack"
GENERATION_SUFFIX = ".generation.json"
#: Uncompressed page bytes per pack: big enough that a gigabyte is a few dozen files, small
#: enough that rebuilding holds one pack in memory at a time.
PACK_BYTES = 32 * 1024 * 1024
#: SQLite's page sizes (sqlite.org/fileformat2.html, 1.3.2): a power of two, 512 to 65536.
PAGE_SIZES = frozenset(1 << bits for bits in range(9, 17))

_HEX = re.compile(r"^[0-9a-f]{64}$")
_PACK_NAME = re.compile(r"^(?P<digest>[0-9a-f]{64})\.pack$")
_GENERATION_NAME = re.compile(
    r"^(?P<stem>.+)-(?P<date>\d{8})-(?P<time>\d{4})(?:-(?P<seq>[2-9]|[1-9]\d+))?\.generation\.json$")


class BadPack(ValueError):
    """A pack whose bytes do not match its name or its own header; ``str()`` says which."""


def _aware_time(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text[:40]!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text[:40]!r} has no UTC offset")
    return text


def _digest(text: str) -> str:
    if not _HEX.match(text):
        raise ValueError(f"not a sha256 in lower-case hex: {text[:70]!r}")
    return text


def _digests(values: Any) -> list[str]:
    # One check over the whole list: a gigabyte's generation lists 262,144 pages, and validating
    # them one by one would make every listing of the backups slow.
    if not isinstance(values, list) or not all(isinstance(value, str) and len(value) == 64 for value in values):
        raise ValueError("not a list of sha256 digests in lower-case hex")
    joined = "".join(values)
    try:
        decoded = bytes.fromhex(joined)  # C speed; it skips whitespace, hence the length check
    except ValueError:
        decoded = b""
    if len(decoded) != 32 * len(values) or joined != joined.lower():
        raise ValueError("not a list of sha256 digests in lower-case hex")
    return values


def _page_size(value: int) -> int:
    if value not in PAGE_SIZES:
        raise ValueError(f"not a SQLite page size: {value}")
    return value


Text = Annotated[str, Strict()]
Count = Annotated[int, Strict(), Field(ge=0)]
Digest = Annotated[str, Strict(), AfterValidator(_digest)]
Time = Annotated[str, Strict(), AfterValidator(_aware_time)]
PageSize = Annotated[int, Strict(), AfterValidator(_page_size)]
Digests = Annotated[list[str], pydantic.PlainValidator(_digests)]


@dataclass
class GenerationManifest:
    """One generation: what the database held, page by page, and how it was verified."""

    __pydantic_config__ = ConfigDict(extra="ignore")

    name: Text
    source: Text
    created_at: Time
    sqlite_version: Text
    page_size: PageSize
    page_count: Count
    #: ``PRAGMA schema_version`` (the header's schema cookie) and ``PRAGMA user_version``.
    schema_version: Annotated[int, Strict()]
    user_version: Annotated[int, Strict()]
    journal_mode: Text  # of the source; a restore puts WAL back
    #: sha256 of every page, page 1 first.
    pages: Digests
    #: The packs (names without ``.pack``) that hold those pages, every one of them needed.
    packs: list[Digest]
    #: sha256 of the whole rebuilt database file (page 1 to the last page).
    raw_sha256: Digest
    #: Pages and stored bytes this generation added to the store (0 when nothing changed).
    new_pages: Count
    new_bytes: Count
    check: Text
    check_result: Text
    verified: Annotated[bool, Strict()]
    durations: dict[Text, Annotated[float, Strict()]] = field(default_factory=dict)
    wal_bytes: Count = 0
    railguard_version: Text = ""
    app: Text | None = None
    kind: Text = KIND
    format: Annotated[int, Strict()] = FORMAT

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
        return (json.dumps(asdict(self), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes | str) -> GenerationManifest:
        """The one parser of generation manifests; :class:`BadManifest` names what is wrong."""
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise BadManifest(f"not JSON ({type(exc).__name__})") from None
        if not isinstance(document, dict):
            raise BadManifest("not a JSON object")
        try:
            manifest = _adapter().validate_python(document)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "manifest"
            detail = "missing" if first["type"] == "missing" else first["msg"].removeprefix("Value error, ")
            raise BadManifest(f"{key}: {detail}") from None
        if manifest.kind != KIND or manifest.format != FORMAT:
            raise BadManifest(f"kind {manifest.kind!r} format {manifest.format}: not a format-{FORMAT} generation")
        if len(manifest.pages) != manifest.page_count:
            raise BadManifest(f"pages: {len(manifest.pages)} digests for page_count {manifest.page_count}")
        return manifest


@functools.cache
def _adapter() -> pydantic.TypeAdapter[GenerationManifest]:
    """Built on the first generation read, not at import: ``railguard status`` imports this module
    for every app, and an app without generations never pays for the validator (docs/cli.md)."""
    return pydantic.TypeAdapter(GenerationManifest)


def store_for(directory: Path, stem: str) -> Path:
    """The page store of the database ``stem`` inside the backup directory ``directory``."""
    return directory / f"{stem}{STORE_SUFFIX}"


def prepare_store(store: Path) -> None:
    make_private_directory(store)
    make_private_directory(store / PACKS_DIR)


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


def pack_names(store: Path) -> list[str]:
    """The digests of the packs in ``store`` (final names only; temporaries are never there)."""
    try:
        return sorted(match["digest"] for entry in os.scandir(store / PACKS_DIR)
                      if (match := _PACK_NAME.match(entry.name)) and entry.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []


def pack_path(store: Path, digest: str) -> Path:
    return store / PACKS_DIR / f"{digest}{PACK_SUFFIX}"


def objects_of(manifest: GenerationManifest) -> list[str]:
    """The store's files, relative to the store, that ``manifest`` needs besides itself.

    One place says what a generation is made of, so that whatever copies, collects or checks
    a store (destinations, GC) follows a change of format without knowing it.
    """
    return [f"{PACKS_DIR}/{digest}{PACK_SUFFIX}" for digest in manifest.packs]


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
    for index in range(count):
        page = pages[index * page_size:(index + 1) * page_size]
        expected = table[index * DIGEST_BYTES:(index + 1) * DIGEST_BYTES]
        if hashlib.sha256(page).digest() != expected:
            raise BadPack(f"pack {digest[:12]}: page {index} does not match its sha256")
        yield expected, page


def as_dict(manifest: GenerationManifest) -> dict[str, Any]:
    """The manifest without its page list, for ``--json`` and logs."""
    document = asdict(manifest)
    document.pop("pages")
    return document
