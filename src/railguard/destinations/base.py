"""The ``Destination``: a place off the host that holds copies of backups, in domain words.

Two layers, as in Litestream's replica client:

- :class:`ObjectStore` is what one backend module implements (``file.py``, ``s3.py``,
  ``rclone.py``): upload a stream under a key without ever making half of it visible, download
  a key, list keys with sizes, remove a key (a missing key is not an error). Backends register
  themselves by URL scheme with :func:`register`.
- :class:`Destination` speaks in backups on top of any store: put a backup (data file, then
  its manifest), list backups, open one, fetch one for restore, stat it, delete some. The rules
  that make a copy trustworthy live here once, for every backend: the data object is read back
  and its size and sha256 compared before the manifest is uploaded, and a copy counts as good
  only when both objects are there and agree and no verification has found it damaged since.

A copy found damaged (by ``backups verify --dest``, ``restore --dest`` or ``drill --dest``) gets
a third object beside it, ``NAME.damaged.json``, saying what was found and for which sha256. The
mark lives at the destination, not on this host, because the host may be the thing that died:
whoever reads the destination next (a new host restoring, ``replicate`` from the old one) sees
it. It applies only to the copy it was written for (same sha256), so a copy replaced by any
means is judged afresh, and :meth:`Destination.put_backup` removes it once a new copy verified.

Every message that leaves this package goes through :meth:`Destination.redact`: a library
error may echo a URL or a connection string that carries a password.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from railguard.backup.compression import CHUNK
from railguard.backup.manifest import Manifest
from railguard.backup.naming import MANIFEST_SUFFIX, parse_name
from railguard.config import DestinationSettings
from railguard.durable import TEMP_MARK
from railguard.errors import ConfigError, NotFound, RailguardError, VerifyFailed
from railguard.progress import CountingReader, Progress, Readable, stage_counter
from railguard.secrets import MASK

#: Suffix of an encrypted data object (what ``age -d`` expects).
AGE_SUFFIX = ".age"
#: Suffix of the mark left beside a copy that failed verification (no backup name ends so).
DAMAGED_SUFFIX = ".damaged.json"
GOOD = "ok"


class DestinationError(RailguardError):
    """A destination could not be reached, read or written (nothing local was touched)."""


class CopyVerifyFailed(VerifyFailed):
    """A copy at a destination does not match what was sent (size or sha256)."""


class RemoteBackupNotFound(NotFound):
    pass


class FetchWriteFailed(RailguardError):
    """A copy could not be written on this host while fetching it (disk full, not writable).

    Never a verdict on the copy: the destination's bytes were not found wanting.
    """


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None = None


class ObjectStore(Protocol):
    """What a backend implements. Keys are plain file names (no slashes) under the URL's path."""

    def upload(self, key: str, source: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
        """Stream ``source`` to ``key``. The key appears only once complete (temp + rename,
        or a multipart upload that is completed or aborted); on any failure it does not exist.
        ``progress``, when given, is called with the size of each piece sent."""

    def download(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A readable stream of ``key``; raises :class:`RemoteBackupNotFound` if it is missing."""

    def objects(self) -> list[ObjectInfo]:
        """Every complete object (temporary names excluded); empty if the location is empty."""

    def remove(self, key: str) -> None:
        """Delete ``key``; deleting a key that does not exist succeeds."""

    def temporaries(self) -> list[ObjectInfo]:
        """Objects left under temporary names by interrupted uploads."""


class ListedStore:
    """``objects`` and ``temporaries`` of a store that lists everything it holds in one go
    (:meth:`listing`): temporary names are told apart the same way for every backend."""

    def listing(self) -> list[ObjectInfo]:
        """Every object at the location, temporary or not."""
        raise NotImplementedError

    def objects(self) -> list[ObjectInfo]:
        return [info for info in self.listing() if not is_temp_key(info.key)]

    def temporaries(self) -> list[ObjectInfo]:
        return [info for info in self.listing() if is_temp_key(info.key)]


Opener = Callable[[str, DestinationSettings, Mapping[str, str], Callable[[str], str]], ObjectStore]
_BACKENDS: dict[str, Opener] = {}


def register(scheme: str) -> Callable[[Opener], Opener]:
    """Make ``opener`` the backend for URLs starting with ``scheme`` (``"s3://"``)."""

    def remember(opener: Opener) -> Opener:
        _BACKENDS[scheme] = opener
        return opener

    return remember


@dataclass
class Encryption:
    """How a copy was encrypted; stored in its manifest so a copy can be checked without the key."""

    format: str  # "age"
    recipients: list[str]
    sha256: str  # of the encrypted object
    size: int


@dataclass
class RemoteBackup:
    """One backup as a destination holds it."""

    name: str
    data_key: str | None
    manifest_key: str | None
    size: int | None  # of the data object
    manifest: Manifest | None
    encryption: Encryption | None
    status: str  # "ok", or why the copy is not usable ("damaged: ..." once marked)
    #: Why a verification found this copy damaged (from its ``.damaged.json`` mark), if one did.
    damaged: str | None = None
    #: When that verification ran (the mark's ``found_at``); None for an unreadable mark.
    damaged_at: datetime | None = None
    damage_key: str | None = None

    @property
    def is_good(self) -> bool:
        return self.status == GOOD

    @property
    def is_complete(self) -> bool:
        """Both objects there and agreeing: good, or marked damaged (which a new check may refute)."""
        return self.is_good or self.damaged is not None

    @property
    def created_at(self) -> datetime:
        if self.manifest is not None:
            return datetime.fromisoformat(self.manifest.created_at)
        backup_id = parse_name(_plain(self.data_key or self.manifest_key or ""))
        assert backup_id is not None
        naive = datetime.strptime(f"{backup_id[0].date}{backup_id[0].time}", "%Y%m%d%H%M")
        return naive.replace(tzinfo=timezone.utc)

    @property
    def expected_sha256(self) -> str | None:
        """The sha256 the data object must have: of the encrypted bytes when encrypted."""
        if self.encryption is not None:
            return self.encryption.sha256
        return self.manifest.sha256 if self.manifest else None

    @property
    def expected_size(self) -> int | None:
        if self.encryption is not None:
            return self.encryption.size
        return self.manifest.size_stored if self.manifest else None


def data_key_for(manifest: Manifest, encrypted: bool) -> str:
    return manifest.file + (AGE_SUFFIX if encrypted else "")


def damage_key_for(name: str) -> str:
    return f"{name}{DAMAGED_SUFFIX}"


@dataclass
class DamageMark:
    """What a verification found wrong with one copy: ``NAME.damaged.json`` at the destination."""

    name: str
    found_at: str  # ISO 8601, UTC
    reason: str
    #: The sha256 of the data object the mark is about (the encrypted bytes when encrypted).
    sha256: str

    def document(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> DamageMark:
        document = json.loads(data.decode("utf-8"))
        return cls(**{key: str(document[key]) for key in ("name", "found_at", "reason", "sha256")})


def manifest_document(manifest: Manifest, encryption: Encryption | None) -> bytes:
    """The manifest as it travels: the local one, plus how the copy was encrypted."""
    document = asdict(manifest)
    if encryption is not None:
        document["encryption"] = asdict(encryption)
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def parse_manifest_document(data: bytes) -> tuple[Manifest, Encryption | None]:
    document = json.loads(data.decode("utf-8"))
    encryption = document.pop("encryption", None)
    return Manifest.from_dict(document), Encryption(**encryption) if encryption else None


def _plain(key: str) -> str:
    return key.removesuffix(AGE_SUFFIX)


# --- secrets -------------------------------------------------------------------------------

#: Environment variables whose values are credentials for the backends railguard drives.
_SECRET_ENV = re.compile(r"^(AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_SECURITY_TOKEN"
                         r"|RCLONE_.*(PASS|TOKEN|SECRET|KEY|PASSWORD|CLIENT_SECRET).*)$")
#: ``pass=...``, ``token=...`` inside an rclone connection string (``:sftp,pass=XXX:path``).
_SECRET_PARAMETER = re.compile(r"(?i)\b([a-z_]*(?:pass|password|token|secret|key)[a-z_]*)=('[^']*'|\"[^\"]*\"|[^,:]+)")
_URL_USERINFO = re.compile(r"(?<=://)([^/@\s]+)@")


def secrets_in(url: str, env: Mapping[str, str]) -> list[str]:
    """Every credential railguard might see while driving this destination."""
    found = [value for name, value in env.items() if value and _SECRET_ENV.match(name)]
    found += [match.group(2).strip("'\"") for match in _SECRET_PARAMETER.finditer(url)]
    found += [match.group(1) for match in _URL_USERINFO.finditer(url)]
    return sorted({value for value in found if len(value) >= 4}, key=len, reverse=True)


def redact_url(url: str) -> str:
    url = _URL_USERINFO.sub(f"{MASK}@", url)
    return _SECRET_PARAMETER.sub(lambda match: f"{match.group(1)}={MASK}", url)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


# --- retries -------------------------------------------------------------------------------

T = TypeVar("T")
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.EBUSY, errno.ESTALE,
                     errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH}


def is_transient_os_error(exc: BaseException) -> bool:
    """Worth another try: a timeout, a busy or stale (NFS) handle, a dropped connection."""
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


def retrying(action: Callable[[], T], *, attempts: int, transient: Callable[[BaseException], bool],
             sleep: Callable[[float], None] = time.sleep, base_delay: float = 0.5, max_delay: float = 8.0) -> T:
    """Run ``action``; retry it with exponential backoff while it fails transiently.

    A permanent failure (bad credentials, missing bucket, disk full) is raised at once: trying
    again cannot fix it and only delays the warning.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not transient(exc):
                raise
            sleep(min(max_delay, base_delay * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


# --- the destination -----------------------------------------------------------------------


class _HashingReader:
    """Reads through, counting and hashing the bytes."""

    def __init__(self, source: Readable) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True


class _LocalWriter:
    """Writes through, raising each OSError as the caller's "cannot write here" error."""

    def __init__(self, target: BinaryIO, writing: Callable[[], contextlib.AbstractContextManager[None]]) -> None:
        self.target = target
        self.writing = writing

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        with self.writing():
            while view:  # an unbuffered write may be short (the last blocks of a filling disk)
                view = view[self.target.write(view) or 0:]
        return len(data)

    def flush(self) -> None:
        with self.writing():
            self.target.flush()

    def writable(self) -> bool:
        return True


class Destination:
    """A named place holding copies of one app's backups."""

    def __init__(self, name: str, settings: DestinationSettings, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.name = name
        self.settings = settings
        self.url = redact_url(settings.url)
        self._secrets = secrets_in(settings.url, env)
        scheme = next((s for s in _BACKENDS if settings.url.startswith(s)), None)
        if scheme is None:
            raise ConfigError(f"destination {name}: unsupported URL {self.url}",
                              hint="Use file:///path, s3://bucket/prefix or rclone:REMOTE:path")
        self.store: ObjectStore = _BACKENDS[scheme](name, settings, env, self.redact)

    def __repr__(self) -> str:
        return f"Destination({self.name!r}, {self.url!r})"

    @property
    def encrypted(self) -> bool:
        return bool(self.settings.age_recipients)

    def redact(self, text: str) -> str:
        return redact_text(text, self._secrets)

    # -- put ---------------------------------------------------------------------------------

    def put_backup(self, data_path: Path, manifest: Manifest, *, scratch: Path | None = None,
                   replacing: RemoteBackup | None = None, progress: Progress | None = None) -> RemoteBackup:
        """Copy one backup here and prove the copy: data object, read back, then the manifest.

        The manifest goes last, so a copy interrupted anywhere is listed as incomplete and never
        counted as good. Encrypted copies are encrypted into ``scratch`` first (same disk as the
        backups), because the manifest must record the sha256 of the exact bytes stored.

        ``replacing`` is what is already here under this name, as listed. A complete copy (one
        marked damaged, or an older backup whose name was reused) stays untouched until the new
        bytes have been stored and read back correctly under a hidden temporary name; only then
        is it removed and the new copy put in its place; its damage mark goes last. A store that mangles uploads, or one that fails
        half-way, therefore never costs the old copy. The bytes travel twice, which only this
        rare path pays: the store interface has no rename (S3 has none).

        ``progress`` gets ``encrypt`` (when encrypted), ``upload`` and ``read-back``, each in
        bytes of the data object (twice over when replacing).
        """
        encrypted = self.encrypted
        data_key = data_key_for(manifest, encrypted)
        manifest_key = f"{manifest.name}{MANIFEST_SUFFIX}"
        with contextlib.ExitStack() as stack:
            if encrypted:
                from railguard.destinations.encryption import encrypt_file

                handle = stack.enter_context(tempfile.TemporaryFile(dir=scratch, prefix=".railguard-age-"))
                sha256, size = encrypt_file(data_path, handle, self.settings.age_recipients,
                                            stage_counter(progress, "encrypt", manifest.size_stored))
                handle.seek(0)
                encryption: Encryption | None = Encryption("age", list(self.settings.age_recipients), sha256, size)
                source: BinaryIO = handle
            else:
                encryption = None
                sha256, size = manifest.sha256, manifest.size_stored
                source = stack.enter_context(data_path.open("rb"))
            if replacing is not None and replacing.manifest_key is not None:
                self._stage(source, temp_key_for(data_key), manifest.name, sha256, size, progress)
            # A half-finished earlier copy of this backup (data without manifest), or the copy
            # being replaced, goes: manifest first, in either form of the data (encryption may
            # have been switched on or off since).
            for key in (manifest_key, data_key_for(manifest, False), data_key_for(manifest, True)):
                self.store.remove(key)
            self._upload(data_key, source, size, progress)
        copy = RemoteBackup(manifest.name, data_key, None, size, manifest, encryption, "not verified")
        try:
            self.check_copy(copy, progress)
        except CopyVerifyFailed:
            # Never leave a copy that failed its check under its final name.
            self.store.remove(data_key)
            raise
        document = manifest_document(manifest, encryption)
        self.store.upload(manifest_key, io.BytesIO(document))
        with self.store.download(manifest_key) as reader:
            if reader.read() != document:
                self.store.remove(manifest_key)
                raise CopyVerifyFailed(f"destination {self.name}: manifest of {manifest.name} reads back different",
                                       hint="The store altered the upload; check it, then run: railguard replicate")
        if replacing is not None and replacing.damage_key is not None:
            # Last: a run killed before this line leaves the mark, and the next replicate copies again.
            self.store.remove(replacing.damage_key)
        copy.manifest_key, copy.status = manifest_key, GOOD
        return copy

    def _upload(self, key: str, source: BinaryIO, size: int, progress: Progress | None) -> None:
        """One data object sent, as the ``upload`` stage; its total is known before it starts."""
        count = stage_counter(progress, "upload", size)
        if count is None:
            self.store.upload(key, source)  # a store written before progress existed still works
            return
        self.store.upload(key, source, progress=count)
        if progress is not None:
            progress("upload", size, size)  # a store that sends in one piece (rclone) ends here

    def _stage(self, source: BinaryIO, key: str, name: str, sha256: str, size: int,
               progress: Progress | None = None) -> None:
        """Upload ``source`` under the hidden ``key``, read it back, remove it.

        Through a second descriptor of the same file: s3transfer closes the stream it uploads,
        and the real upload still needs this one (an encrypted copy exists only in it).
        """
        with os.fdopen(os.dup(source.fileno()), "rb") as again:
            again.seek(0)
            try:
                self._upload(key, again, size, progress)
                self._read_back(key, name, sha256, size, progress)
            finally:
                self.store.remove(key)
        source.seek(0)

    def check_copy(self, copy: RemoteBackup, progress: Progress | None = None) -> None:
        """Read the data object back: its size and sha256 must be what was sent.

        Reading back costs one download, but an upload that "returned 200" proves nothing about
        the bytes at rest; not every S3-compatible store computes checksums over multipart
        uploads (moto, older MinIO), and rclone remotes support different hash types.
        """
        if copy.data_key is None or copy.expected_sha256 is None or copy.expected_size is None:
            raise CopyVerifyFailed(f"destination {self.name}: copy of {copy.name} is {copy.status}",
                                   hint="Run: railguard replicate (it copies it again)")
        self._read_back(copy.data_key, copy.name, copy.expected_sha256, copy.expected_size, progress)

    def _read_back(self, key: str, name: str, sha256: str, size: int, progress: Progress | None = None) -> None:
        with self.store.download(key) as stream:
            reader = _HashingReader(CountingReader(stream, stage_counter(progress, "read-back", size)))
            while reader.read(CHUNK):
                pass
        if progress is not None and reader.size == size:
            progress("read-back", size, size)
        if reader.size != size or reader.sha256.hexdigest() != sha256:
            what = "size" if reader.size != size else "sha256"
            raise CopyVerifyFailed(
                f"destination {self.name}: copy of {name} does not match ({what} read back differs)",
                hint="The stored object is damaged or was changed; run: railguard replicate")

    # -- list, stat, open --------------------------------------------------------------------

    def list_backups(self, stem: str | None = None) -> list[RemoteBackup]:
        """Every backup here (of database ``stem`` if given), oldest first, each with its status."""
        return self._backups(stem, marked_only=False)

    def damaged_backups(self, stem: str | None = None) -> list[RemoteBackup]:
        """The copies here that a verification found damaged (``NAME.damaged.json`` for their
        bytes), oldest first. One listing of the store; only the marked copies' manifests and
        marks are read, so a destination without marks costs what listing it costs."""
        return [backup for backup in self._backups(stem, marked_only=True) if backup.damaged is not None]

    def _backups(self, stem: str | None, *, marked_only: bool) -> list[RemoteBackup]:
        data: dict[str, ObjectInfo] = {}
        manifests: dict[str, ObjectInfo] = {}
        marks: dict[str, str] = {}
        for info in self.store.objects():
            if info.key.endswith(DAMAGED_SUFFIX):
                # Named like its backup's manifest, so naming's own rule recognises the name.
                parsed = parse_name(info.key.removesuffix(DAMAGED_SUFFIX) + MANIFEST_SUFFIX, stem)
                if parsed is not None:
                    marks[str(parsed[0])] = info.key
                continue
            parsed = parse_name(_plain(info.key), stem)
            if parsed is None:
                continue
            backup_id, kind = parsed
            (manifests if kind == "manifest" else data)[str(backup_id)] = info
        names = data.keys() | manifests.keys()
        if marked_only:
            names &= marks.keys()  # a mark left without its copy marks nothing
        backups = [self._backup(name, data.get(name), manifests.get(name)) for name in names]
        for backup in backups:
            if backup.name in marks:
                self._apply_mark(backup, marks[backup.name])
        backups.sort(key=lambda backup: (backup.created_at, backup.name))
        return backups

    def _apply_mark(self, backup: RemoteBackup, key: str) -> None:
        """A good-looking copy with a mark for its sha256 is damaged; a mark for other bytes
        (the copy was replaced since) is stale and ignored, and removed with the copy."""
        backup.damage_key = key
        if not backup.is_good:
            return
        try:
            with self.store.download(key) as reader:
                mark = DamageMark.parse(reader.read())
        except RemoteBackupNotFound:
            return  # removed while listing: a new copy has just verified
        except (ValueError, TypeError, KeyError):
            # Only railguard writes marks; one that does not parse still says "do not trust".
            mark = DamageMark(backup.name, "", "unreadable damage mark", backup.expected_sha256 or "")
        if mark.sha256 == backup.expected_sha256:
            backup.damaged = mark.reason
            backup.status = f"damaged: {mark.reason}"
            with contextlib.suppress(ValueError):
                backup.damaged_at = datetime.fromisoformat(mark.found_at)

    def _backup(self, name: str, data: ObjectInfo | None, manifest_info: ObjectInfo | None) -> RemoteBackup:
        backup = RemoteBackup(name, data.key if data else None, manifest_info.key if manifest_info else None,
                              data.size if data else None, None, None, "incomplete: no manifest")
        if manifest_info is None:
            return backup
        try:
            with self.store.download(manifest_info.key) as reader:
                backup.manifest, backup.encryption = parse_manifest_document(reader.read())
        except RemoteBackupNotFound:
            backup.status = "manifest vanished while listing"
            return backup
        except (ValueError, TypeError, KeyError):
            backup.status = "unreadable manifest"
            return backup
        if backup.manifest.name != name:
            # Names from a store are not trusted: they become local file names in fetch().
            backup.status = f"manifest is for {backup.manifest.name!r}"
        elif data is None:
            backup.status = "missing data file"
        elif data.key != data_key_for(backup.manifest, backup.encryption is not None):
            backup.status = f"manifest names {data_key_for(backup.manifest, backup.encryption is not None)}"
        elif data.size != backup.expected_size:
            backup.status = f"size {data.size} differs from the manifest's {backup.expected_size}"
        else:
            backup.status = GOOD
        return backup

    def stat_backup(self, name: str, stem: str | None = None) -> RemoteBackup:
        """The backup called ``name`` here (``latest``: the newest good one)."""
        backups = self.list_backups(stem)
        if name in ("latest", None):
            good = [backup for backup in backups if backup.is_good]
            if not good:
                raise RemoteBackupNotFound(f"destination {self.name} holds no good copy",
                                           hint="Run: railguard replicate --dest " + self.name)
            return good[-1]
        for suffix in (MANIFEST_SUFFIX, AGE_SUFFIX, ".zst", ".gz", ".sqlite3"):
            name = name.removesuffix(suffix)
        for backup in backups:
            if backup.name == name:
                return backup
        recent = ", ".join(backup.name for backup in backups[-3:]) or "none"
        raise RemoteBackupNotFound(f"destination {self.name} has no backup named {name!r}",
                                   hint=f"Newest there: {recent}. See: railguard backups list --dest {self.name}")

    @contextlib.contextmanager
    def open_backup(self, backup: RemoteBackup) -> Iterator[BinaryIO]:
        """The stored data object as a stream (still encrypted when the copy is)."""
        if backup.data_key is None:
            raise RemoteBackupNotFound(f"destination {self.name}: backup {backup.name} has no data object")
        with self.store.download(backup.data_key) as stream:
            yield stream

    def fetch(self, backup: RemoteBackup, into: Path, *, identity_file: Path | None = None,
              progress: Progress | None = None) -> Path:
        """Download ``backup`` into the directory ``into`` as a local backup (data + manifest).

        The result looks exactly like a local backup, so the same verified path reads it
        (``catalog.list_backups`` + ``verify.materialize``). An encrypted copy is checked
        against the sha256 of its encrypted bytes while it is decrypted. Returns the data path.

        A copy marked damaged is fetched too (so that verifying it again is possible); callers
        choosing a copy to restore pick good ones only.

        Raises :class:`CopyVerifyFailed` when the stored bytes differ from the manifest (flipped,
        cut short, a damaged age header or payload chunk), :class:`DecryptFailed` when the bytes
        are intact and the identity does not open them, :class:`FetchWriteFailed` when this
        host cannot write the copy (disk full): a full disk is never reported as a damaged copy.

        ``progress`` gets the ``download`` stage, in bytes of the stored object.
        """
        if not backup.is_complete or backup.manifest is None:
            raise CopyVerifyFailed(f"destination {self.name}: backup {backup.name} is {backup.status}",
                                   hint="Pick another with: railguard backups list --dest " + self.name)
        manifest = backup.manifest
        identity = identity_file or self.settings.age_identity_file
        if backup.encryption is not None and identity is None:
            raise ConfigError(f"destination {self.name}: backup {backup.name} is encrypted; "
                              "an age identity is needed to read it",
                              hint="Pass --identity FILE or set age_identity_file for this destination")
        target = into / manifest.file
        with self._output(target, backup) as output:  # removed again if anything below fails
            with self.open_backup(backup) as stream:
                size = backup.expected_size or 0
                reader = _HashingReader(CountingReader(stream, stage_counter(progress, "download", size)))
                if backup.encryption is not None:
                    assert identity is not None
                    self._decrypt(backup, reader, output, identity)
                else:
                    while chunk := reader.read(CHUNK):
                        output.write(chunk)
            if reader.size != backup.expected_size or reader.sha256.hexdigest() != backup.expected_sha256:
                raise self._damaged(backup)
            if progress is not None:
                progress("download", size, size)
            with self._writing(into, backup):
                (into / f"{manifest.name}{MANIFEST_SUFFIX}").write_bytes(manifest.to_json())
        return target

    def _decrypt(self, backup: RemoteBackup, reader: _HashingReader, output: BinaryIO, identity: Path) -> None:
        from railguard.destinations.encryption import DecryptFailed, decrypt_stream

        try:
            decrypt_stream(reader, output, identity)  # type: ignore[arg-type]  # pyrage only calls read()
        except DecryptFailed as exc:
            # age cannot tell a wrong key from a damaged header, nor a damaged chunk from
            # anything: the manifest's sha256 of the stored bytes can. Hash them all, then judge.
            self._drain(reader)
            if reader.size != backup.expected_size or reader.sha256.hexdigest() != backup.expected_sha256:
                raise self._damaged(backup, f"age: {exc.age_error}") from None
            if exc.payload:
                raise CopyVerifyFailed(
                    f"destination {self.name}: copy of {backup.name} matches its manifest but fails age's check "
                    f"({exc.age_error}): it was stored damaged",
                    hint="Restore another backup; run railguard replicate to copy this one again") from None
            raise
        # age reads its final chunk and stops; drain so the hash covers every stored byte.
        self._drain(reader)

    @staticmethod
    def _drain(reader: _HashingReader) -> None:
        while reader.read(CHUNK):
            pass

    def _damaged(self, backup: RemoteBackup, detail: str = "") -> CopyVerifyFailed:
        return CopyVerifyFailed(
            f"destination {self.name}: copy of {backup.name} does not match its manifest"
            + (f" ({detail})" if detail else ""),
            hint=f"The stored copy is damaged; restore another (railguard backups list --dest {self.name}), "
                 "and run railguard replicate to replace it from the local backup")

    @contextlib.contextmanager
    def _writing(self, into: Path, backup: RemoteBackup) -> Iterator[None]:
        """An OSError from writing on this host is this host's problem, never the copy's."""
        try:
            yield
        except OSError as exc:
            raise FetchWriteFailed(
                f"cannot write the copy of {backup.name} in {into}: {exc.strerror or exc}",
                hint=f"Free space in {into} (the copy alone needs {backup.expected_size} bytes), or make it "
                     "writable; the copy at the destination was not judged") from None

    @contextlib.contextmanager
    def _output(self, target: Path, backup: RemoteBackup) -> Iterator[BinaryIO]:
        """``target`` for writing, every write error raised as :class:`FetchWriteFailed`; the
        file is removed when the block fails.

        Writes are wrapped one by one, not the whole download: an OSError reading the store
        (a file:// share that drops) is the destination's problem, not this host's.
        """
        with self._writing(target.parent, backup):
            # Exclusive, no symlink followed, 0600: the plaintext of a backup lands here.
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            # Unbuffered: a buffer flushed by close() would raise a full disk from the wrong place.
            with os.fdopen(descriptor, "wb", buffering=0) as handle:
                # The write() and flush() that fetch uses (and pyrage through decrypt_stream); no more.
                yield _LocalWriter(handle, lambda: self._writing(target.parent, backup))  # type: ignore[misc]
        except BaseException:
            with contextlib.suppress(OSError):
                target.unlink()
            raise

    # -- delete, tidy ------------------------------------------------------------------------

    def delete_backups(self, backups: Iterable[RemoteBackup]) -> list[str]:
        """Remove these copies: the manifest first, so a half-deleted copy reads as incomplete;
        a damage mark last, so a half-deleted damaged copy still reads as damaged."""
        deleted = []
        for backup in backups:
            for key in (backup.manifest_key, backup.data_key, backup.damage_key):
                if key is not None:
                    self.store.remove(key)
            deleted.append(backup.name)
        return deleted

    # -- damage marks ------------------------------------------------------------------------

    def mark_damaged(self, backup: RemoteBackup, reason: str, now: datetime) -> RemoteBackup:
        """Record at the destination that ``backup`` failed verification, so that nothing picks
        it as a good copy again and the next ``replicate`` replaces it. Returns it as marked."""
        sha256 = backup.expected_sha256
        if sha256 is None:  # incomplete: already not good, nothing to mark
            return backup
        found_at = now.astimezone(timezone.utc).replace(microsecond=0)
        mark = DamageMark(backup.name, found_at.isoformat(), reason, sha256)
        key = damage_key_for(backup.name)
        self.store.upload(key, io.BytesIO(mark.document()))
        backup.damage_key, backup.damaged, backup.status = key, reason, f"damaged: {reason}"
        backup.damaged_at = found_at
        return backup

    def clear_damage(self, backup: RemoteBackup) -> RemoteBackup:
        """A marked copy that has just verified in full is good again (it was replaced by hand)."""
        if backup.damage_key is not None:
            self.store.remove(backup.damage_key)
        if backup.damaged is not None:
            backup.damaged, backup.damaged_at, backup.status = None, None, GOOD
        backup.damage_key = None
        return backup

    def remove_stale_temporaries(self, now: datetime, older_than_seconds: float = 86400) -> list[str]:
        """Temporary objects of uploads killed mid-way (kill -9, power loss), once clearly stale.

        Age, not ownership, decides: a concurrent upload from another run must not be cut short.
        """
        removed = []
        for info in self.store.temporaries():
            if info.modified is not None and (now - info.modified).total_seconds() > older_than_seconds:
                self.store.remove(info.key)
                removed.append(info.key)
        return removed


def temp_key_for(key: str) -> str:
    """A hidden temporary name that :func:`is_temp_key` recognises (durable.temp_path_for's form)."""
    return f".{key}{TEMP_MARK}{os.getpid()}-{os.urandom(3).hex()}"


def is_temp_key(key: str) -> bool:
    return key.startswith(".") and TEMP_MARK in key

