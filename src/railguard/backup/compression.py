"""Streaming compression that stock tools can undo: ``gunzip`` for gzip, ``zstd -d`` for zstd.

Memory stays flat whatever the database size: data moves in 1 MiB chunks. The sha256 of the
raw input and of the stored output are computed in the same pass.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import zstandard

from railguard.progress import Readable

CHUNK = 1 << 20
DEFAULT_LEVEL = {"gzip": 6, "zstd": 3}
#: Called with the size of each chunk done (railguard.progress.stage_counter makes one).
Progress = Callable[[int], None]


class HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False


def compress_file(
    source: Path, target: BinaryIO, compression: str, level: int | None, progress: Progress | None = None
) -> tuple[str, str, int]:
    """Compress ``source`` into the open ``target``. Returns (raw sha256, stored sha256, stored size)."""
    stored = HashingWriter(target)
    raw = hashlib.sha256()
    with source.open("rb") as reader:
        compressing: BinaryIO | gzip.GzipFile | None = None
        if compression == "zstd":
            compressor = zstandard.ZstdCompressor(level=level or DEFAULT_LEVEL["zstd"], write_checksum=True)
            # zstandard's stub asks for an IO[bytes]; the writer only calls write() and flush().
            compressing = compressor.stream_writer(stored, size=source.stat().st_size,  # type: ignore[arg-type]
                                                   closefd=False)
        elif compression == "gzip":
            # mtime=0 and no file name in the header: the same database gives the same bytes.
            compressing = gzip.GzipFile(filename="", fileobj=stored, mode="wb",
                                        compresslevel=level or DEFAULT_LEVEL["gzip"], mtime=0)
        _pump(reader, progress, raw.update, (stored if compressing is None else compressing).write)
        if compressing is not None:
            compressing.close()
    target.flush()
    return raw.hexdigest(), stored.sha256.hexdigest(), stored.size


def open_decompressed(path: Path, compression: str) -> BinaryIO:
    """A readable stream of the raw database inside a stored backup file."""
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
    if compression == "gzip":
        # A GzipFile has every method of a BinaryIO; typeshed does not declare it one.
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def decompress_to(path: Path, compression: str, target: BinaryIO) -> str:
    """Write the raw database to ``target``; returns its sha256."""
    with path.open("rb") as stored:
        return decompress_stream_to(stored, compression, target)


def decompress_stream_to(stored: BinaryIO, compression: str, target: BinaryIO,
                         progress: Progress | None = None) -> str:
    """:func:`decompress_to` from an open stored file (left open); ``progress`` gets raw bytes."""
    digest = hashlib.sha256()
    if compression == "zstd":
        reader: BinaryIO | gzip.GzipFile = zstandard.ZstdDecompressor().stream_reader(stored, closefd=False)
    elif compression == "gzip":
        reader = gzip.GzipFile(fileobj=stored, mode="rb")
    else:
        reader = stored
    _pump(reader, progress, digest.update, target.write)
    if reader is not stored:
        reader.close()
    target.flush()
    return digest.hexdigest()


def sha256_of_decompressed(path: Path, compression: str, progress: Progress | None = None) -> str:
    """The sha256 of the raw database inside ``path``; ``progress`` gets each chunk's raw size."""
    digest = hashlib.sha256()
    with open_decompressed(path, compression) as reader:
        _pump(reader, progress, digest.update)
    return digest.hexdigest()


def sha256_of_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        _pump(reader, progress, digest.update)
    return digest.hexdigest()


def _pump(reader: Readable, progress: Progress | None, *sinks: Callable[[bytes], object]) -> None:
    """Read ``reader`` to its end a chunk at a time, hand each chunk to every sink (a hash's
    ``update``, a file's ``write``) and count it (``progress``)."""
    while chunk := reader.read(CHUNK):
        for sink in sinks:
            sink(chunk)
        if progress:
            progress(len(chunk))
