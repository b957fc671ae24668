"""Page generations at a destination (docs/pages.md): only the objects a destination lacks travel.

At the destination, under the app's prefix, the layout of the local page store::

    <stem>.pages/<name>.generation.json      one document per generation (below)
    <stem>.pages/packs/<sha256>.pack[.age]   the objects, each named by the sha256 of its bytes
    <stem>.pages/lists/<sha256>.list[.age]   (a format-2 generation's page list)

What a generation is made of comes from :func:`railguard.pages.store.objects_of` only: each of
those store-relative paths is an opaque object, content-addressed, copied under the same path
(``.age`` appended when the destination encrypts). Each folder of them is a store of its own
(the backends' ``child``), so listing a folder is one listing, whatever the format grows into.

Putting one generation (:meth:`GenerationCopies.put`), in this order:

1. Each object the destination lacks (by listing, never by downloading) is hashed here first:
   its bytes must be its name, so a pack damaged on this disk is never spread. It is sent
   (encrypted on its own into a private temporary file when the destination has
   ``age_recipients``: age output is not deterministic), read back, and its size and sha256
   compared, as :meth:`~railguard.destinations.base.Destination.put_backup` does.
2. Only then the document: the local manifest plus, per object, its key, stored size and the
   sha256 of the stored bytes (the ciphertext's when encrypted), and how it was encrypted. It
   is read back too. A document at the destination therefore always names objects that are
   there; an interrupted run leaves objects no document names, which the destination's prune
   removes (:func:`collect_garbage`).

An object already there is reused when listed with the size a document there recorded for it
(encrypted: its ciphertext's sha256 comes from that document) or, unencrypted, the size of the
local file. Bytes sent are the bytes of the objects actually uploaded.

Reading back (:meth:`GenerationCopies.fetch`) downloads a generation's objects into a private
scratch store beside the backups (each object's stored sha256 checked, decrypted, its plain
bytes hashed against its name), writes the local manifest there, and returns it as a local
:class:`~railguard.pages.catalog.GenerationRecord`: verify, restore and drill then take their
local paths (:mod:`railguard.pages.rebuild`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from railguard.backup.compression import CHUNK
from railguard.backup.manifest import BadManifest
from railguard.destinations.base import (
    AGE_SUFFIX, CopyVerifyFailed, Destination, ObjectInfo, ObjectStore, RemoteBackupNotFound, _HashingReader,
)
from railguard.errors import ConfigError, NotFound, VerifyFailed
from railguard.pages import STORE_SUFFIX
from railguard.pages.catalog import GenerationRecord, list_generations
from railguard.pages.faults import fault_point
from railguard.pages.store import (
    GENERATION_SUFFIX, GenerationManifest, objects_of, parse_generation_name, prepare_store,
)
from railguard.progress import Progress

if TYPE_CHECKING:
    from railguard.destinations.encryption import DecryptFailed

#: The document's keys beside the manifest's own.
STORED_KEY = "stored_objects"
ENCRYPTION_KEY = "encryption"
_DIGEST = re.compile(r"^([0-9a-f]{64})(?:\.|$)")


class GenerationNotFound(NotFound):
    pass


@dataclass(frozen=True)
class StoredObject:
    """One object of a generation as a destination holds it."""

    path: str  # relative to the store, as objects_of names it
    key: str  # relative to <stem>.pages at the destination: path, or path + ".age"
    size: int  # of the stored bytes
    sha256: str  # of the stored bytes (the ciphertext's when encrypted)

    @property
    def digest(self) -> str:
        """The sha256 of the object's plain bytes: its name."""
        return plain_digest(self.path)


def plain_digest(path: str) -> str:
    match = _DIGEST.match(path.rpartition("/")[2])
    if match is None:
        raise BadManifest(f"object {path} is not named by a sha256")
    return match[1]


@dataclass
class RemoteGeneration:
    """One generation as a destination holds it, with its status (``ok`` or why not)."""

    name: str
    manifest_key: str
    manifest: GenerationManifest | None
    objects: list[StoredObject]
    recipients: list[str] | None  # age recipients when its objects are encrypted
    status: str
    #: The objects (keys) this generation names that are not there as recorded.
    missing: list[str] = field(default_factory=list)
    document_size: int = 0

    @property
    def is_good(self) -> bool:
        return self.status == "ok"

    @property
    def encrypted(self) -> bool:
        return self.recipients is not None

    @property
    def created_at(self) -> datetime:
        if self.manifest is not None:
            return self.manifest.created
        parsed = parse_generation_name(self.manifest_key)
        assert parsed is not None
        # As RemoteBackup's: the name's minute, read as UTC (the zone it was named in is unknown here).
        return datetime.strptime(f"{parsed.date}{parsed.time}", "%Y%m%d%H%M").replace(tzinfo=timezone.utc)

    @property
    def stored_bytes(self) -> int:
        return sum(item.size for item in self.objects)


def generation_document(manifest: GenerationManifest, objects: list[StoredObject], recipients: list[str] | None) -> bytes:
    document: dict[str, Any] = asdict(manifest)
    document[STORED_KEY] = [asdict(item) for item in objects]
    if recipients is not None:
        document[ENCRYPTION_KEY] = {"format": "age", "recipients": list(recipients)}
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def parse_generation_document(data: bytes, name: str) -> tuple[GenerationManifest, list[StoredObject], list[str] | None]:
    """The manifest, its stored objects and recipients; :class:`BadManifest` says what is wrong.

    Names from a store are not trusted (they become file names when fetching): the objects must
    be exactly those the manifest needs, each under its own path or that path + ``.age``.
    """
    try:
        document = json.loads(data)
        stored = document.pop(STORED_KEY)
        encryption = document.pop(ENCRYPTION_KEY, None)
        objects = [StoredObject(str(item["path"]), str(item["key"]), int(item["size"]), str(item["sha256"]))
                   for item in stored]
        recipients = None if encryption is None else [str(value) for value in encryption["recipients"]]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadManifest(f"not a generation document ({type(exc).__name__})") from None
    manifest = GenerationManifest.parse(json.dumps(document))
    if manifest.name != name:
        raise BadManifest(f"document is for {manifest.name!r}")
    suffix = AGE_SUFFIX if recipients is not None else ""
    if sorted(item.path for item in objects) != sorted(objects_of(manifest)) \
            or any(item.key != item.path + suffix for item in objects):
        raise BadManifest("its objects are not those its manifest needs")
    return manifest, objects, recipients


class GenerationCopies:
    """The generations of database ``stem`` at one destination."""

    def __init__(self, destination: Destination, stem: str) -> None:
        child = getattr(destination.store, "child", None)
        if child is None:
            raise ConfigError(f"destination {destination.name}: its backend cannot hold page generations",
                              hint="Use a file://, s3:// or rclone: destination")
        self.destination = destination
        self.stem = stem
        self.root: ObjectStore = child(f"{stem}{STORE_SUFFIX}")
        self._folders: dict[str, ObjectStore] = {"": self.root}

    @property
    def name(self) -> str:
        return self.destination.name

    def _store_of(self, folder: str) -> ObjectStore:
        """The store of ``folder`` (relative to ``<stem>.pages``; "" for it)."""
        if folder not in self._folders:
            self._folders[folder] = self.root.child(folder)  # type: ignore[attr-defined]
        return self._folders[folder]

    def _folder(self, key: str) -> tuple[ObjectStore, str]:
        """The store holding ``key``, and the key's name in it."""
        folder, _, base = key.rpartition("/")
        return self._store_of(folder), base

    def listing(self, folders: Iterable[str]) -> dict[str, ObjectInfo]:
        """The objects in ``folders`` (relative to ``<stem>.pages``), by key: one listing each."""
        found: dict[str, ObjectInfo] = {}
        for folder in sorted(set(folders)):
            for info in self._store_of(folder).objects():
                key = f"{folder}/{info.key}" if folder else info.key
                found[key] = ObjectInfo(key, info.size, info.modified)
        return found

    # -- list -------------------------------------------------------------------------------

    def held(self) -> list[RemoteGeneration]:
        """Every generation here, oldest first, each with its status: its document parses and
        every object it names is listed with the size it recorded."""
        generations = []
        for info in self.root.objects():
            parsed = parse_generation_name(info.key, self.stem)
            if parsed is None:
                continue
            generation = RemoteGeneration(str(parsed), info.key, None, [], None, "unreadable document",
                                          document_size=info.size)
            try:
                with self.root.download(info.key) as reader:
                    data = reader.read()
                generation.manifest, generation.objects, generation.recipients = \
                    parse_generation_document(data, generation.name)
                generation.status = "ok"
            except RemoteBackupNotFound:
                generation.status = "document vanished while listing"
            except BadManifest as exc:
                generation.status = f"unreadable document ({exc})"
            generations.append(generation)
        listed = self.listing(object_folders(generations))
        for generation in generations:
            generation.missing = [item.key for item in generation.objects
                                  if item.key not in listed or listed[item.key].size != item.size]
            if generation.is_good and generation.missing:
                generation.status = f"missing object {generation.missing[0]}" + (
                    f" (and {len(generation.missing) - 1} more)" if len(generation.missing) > 1 else "")
        generations.sort(key=lambda generation: (generation.created_at, generation.name))
        return generations

    def resolve(self, name: str | None, generations: list[RemoteGeneration] | None = None) -> RemoteGeneration:
        """The generation ``name`` here (``latest`` or None: the newest good one)."""
        generations = self.held() if generations is None else generations
        if name in (None, "latest"):
            good = [generation for generation in generations if generation.is_good]
            if not good:
                raise GenerationNotFound(f"destination {self.name} holds no good generation",
                                         hint=f"Run: railguard replicate --dest {self.name}")
            return good[-1]
        wanted = name.removesuffix(GENERATION_SUFFIX)
        for generation in generations:
            if generation.name == wanted:
                return generation
        recent = ", ".join(generation.name for generation in generations[-3:]) or "none"
        raise GenerationNotFound(f"destination {self.name} has no generation named {name!r}",
                                 hint=f"Newest there: {recent}. See: railguard backups list --dest {self.name}")

    # -- put --------------------------------------------------------------------------------

    def put(self, record: GenerationRecord, there: list[RemoteGeneration], listed: dict[str, ObjectInfo], *,
            scratch: Path | None = None, replacing: RemoteGeneration | None = None,
            progress: Progress | None = None) -> tuple[RemoteGeneration, int]:
        """Copy the local generation ``record`` here: missing objects (each read back), then its
        document. Returns the copy and the bytes of the objects uploaded.

        ``there`` and ``listed`` are what :meth:`held` and :meth:`listing` found at the start of
        the run; ``listed`` is updated with what this call uploads.
        """
        assert record.manifest is not None
        manifest = record.manifest
        recipients = list(self.destination.settings.age_recipients) if self.destination.encrypted else None
        known = _known_objects(there, recipients is not None)
        objects, sent = [], 0
        for path in objects_of(manifest):
            key = path + (AGE_SUFFIX if recipients is not None else "")
            stored = self._reusable(record, path, key, known.get(key), listed.get(key), recipients is not None)
            if stored is None:
                stored = self._send(record, path, key, recipients, scratch, key in listed)
                listed[key] = ObjectInfo(key, stored.size)
                sent += stored.size
                fault_point("dest-object")
            objects.append(stored)
        document = generation_document(manifest, objects, recipients)
        manifest_key = f"{manifest.name}{GENERATION_SUFFIX}"
        if replacing is not None:
            self.root.remove(replacing.manifest_key)  # the store's upload never overwrites (file://)
        self.root.upload(manifest_key, io.BytesIO(document))
        with self.root.download(manifest_key) as reader:
            if reader.read() != document:
                self.root.remove(manifest_key)
                raise CopyVerifyFailed(f"destination {self.name}: document of generation {manifest.name} reads "
                                       "back different", hint="The store altered the upload; check it, then run: "
                                                              "railguard replicate")
        return RemoteGeneration(manifest.name, manifest_key, manifest, objects, recipients, "ok",
                                document_size=len(document)), sent

    def _reusable(self, record: GenerationRecord, path: str, key: str, known: StoredObject | None,
                  listed: ObjectInfo | None, encrypted: bool) -> StoredObject | None:
        if listed is None:
            return None
        if known is not None and listed.size == known.size:
            return known
        if not encrypted:
            size = _local_size(record, path)
            if listed.size == size:
                return StoredObject(path, key, size, plain_digest(path))
        return None  # a leftover of an interrupted run, or an encrypted one no document describes

    def _send(self, record: GenerationRecord, path: str, key: str, recipients: list[str] | None,
              scratch: Path | None, exists: bool) -> StoredObject:
        local = record.store / path
        digest = plain_digest(path)
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(_open_local(local, record.name))
            actual = _sha256_size(source)
            if actual[0] != digest:
                raise VerifyFailed(f"generation {record.name}: local object {path} does not hash to its name "
                                   "(damaged on this disk); not copied",
                                   hint="Run: railguard backups verify --all (the next backup stores it again)")
            source.seek(0)
            if recipients is not None:
                from railguard.destinations.encryption import encrypt_file

                handle = stack.enter_context(tempfile.TemporaryFile(dir=scratch, prefix=".railguard-age-"))
                sha256, size = encrypt_file(local, handle, recipients)
                handle.seek(0)
                upload: BinaryIO = handle
            else:
                sha256, size = actual
                upload = source
            store, base = self._folder(key)
            if exists:
                store.remove(base)  # a leftover under that name (upload never overwrites it)
            store.upload(base, upload)
        with store.download(base) as stream:
            reader = _HashingReader(stream)
            while reader.read(CHUNK):
                pass
        if reader.size != size or reader.sha256.hexdigest() != sha256:
            store.remove(base)  # never leave an object that failed its check under its name
            raise CopyVerifyFailed(f"destination {self.name}: object {key} of generation {record.name} does not "
                                   f"match ({'size' if reader.size != size else 'sha256'} read back differs)",
                                   hint="The stored object is damaged or was changed; run: railguard replicate")
        return StoredObject(path, key, size, sha256)

    # -- fetch ------------------------------------------------------------------------------

    def fetch(self, generations: list[RemoteGeneration], into: Path, *, identity_file: Path | None = None,
              every: list[RemoteGeneration] | None = None) -> dict[str, GenerationRecord | CopyVerifyFailed]:
        """Download ``generations`` into a page store in the private directory ``into``.

        Each object once, however many generations share it. Returns, per generation name, its
        local record, or the :class:`CopyVerifyFailed` naming the damaged or missing object and
        (from ``every``, the generations here) every generation it breaks.
        """
        store = into / f"{self.stem}{STORE_SUFFIX}"
        prepare_store(store)
        identity = identity_file or self.destination.settings.age_identity_file
        broken: dict[str, str] = {}  # object key -> what is wrong with it
        fetched: set[str] = set()
        results: dict[str, GenerationRecord | CopyVerifyFailed] = {}
        for generation in generations:
            if generation.manifest is None:
                results[generation.name] = CopyVerifyFailed(
                    f"destination {self.name}: generation {generation.name} is {generation.status}",
                    hint=f"Pick another with: railguard backups list --dest {self.name}")
                continue
            if generation.encrypted and identity is None:
                raise ConfigError(f"destination {self.name}: generation {generation.name} is encrypted; "
                                  "an age identity is needed to read it",
                                  hint="Pass --identity FILE or set age_identity_file for this destination")
            for item in generation.objects:
                if item.key in fetched or item.key in broken:
                    continue
                problem = self._fetch_object(item, store, identity if generation.encrypted else None)
                if problem is None:
                    fetched.add(item.key)
                else:
                    broken[item.key] = problem
            bad = [item.key for item in generation.objects if item.key in broken]
            if bad:
                results[generation.name] = self._broken(bad[0], broken[bad[0]], every or generations)
                continue
            (store / f"{generation.name}{GENERATION_SUFFIX}").write_bytes(generation.manifest.to_json())
        local = {record.name: record for record in list_generations(into, self.stem)}
        for generation in generations:
            if generation.name not in results:
                record = local.get(generation.name)
                if record is None or not record.is_good:
                    results[generation.name] = CopyVerifyFailed(
                        f"destination {self.name}: generation {generation.name} does not read as a generation "
                        f"({record.reason if record else 'nothing fetched'})",
                        hint=f"Pick another with: railguard backups list --dest {self.name}")
                else:
                    results[generation.name] = record
        return results

    def _broken(self, key: str, problem: str, every: list[RemoteGeneration]) -> CopyVerifyFailed:
        needing = [generation.name for generation in every if any(item.key == key for item in generation.objects)]
        return CopyVerifyFailed(f"destination {self.name}: object {key} {problem}; it breaks generation(s) "
                                f"{', '.join(needing)}",
                                hint=f"Remove {key} there and run railguard replicate --dest {self.name} --all "
                                     "(it sends it again from the local store), or restore another generation")

    def _fetch_object(self, item: StoredObject, store: Path, identity: Path | None) -> str | None:
        """Download one object into ``store``; None when it is intact, else what is wrong."""
        target = store / item.path
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder, base = self._folder(item.key)
        descriptor = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        ok = False
        try:
            with os.fdopen(descriptor, "w+b") as output:
                try:
                    with folder.download(base) as stream:
                        reader = _HashingReader(stream)
                        refused = None
                        if identity is not None:
                            refused = self._decrypt(reader, output, identity)
                        else:
                            while chunk := reader.read(CHUNK):
                                output.write(chunk)
                except RemoteBackupNotFound:
                    return "is missing"
                # age cannot tell a wrong key from a damaged header: the recorded sha256 can.
                if reader.size != item.size or reader.sha256.hexdigest() != item.sha256:
                    return "does not match its recorded sha256 (damaged at the destination)"
                if refused is not None:
                    if refused.payload:
                        return f"matches its record but fails age's check ({refused.age_error}): it was stored damaged"
                    raise refused
                output.flush()
                output.seek(0)
                if _sha256_size(output)[0] != item.digest:
                    return "does not hash to its name once decrypted (it was stored damaged)"
            ok = True
            return None
        finally:
            if not ok:
                with contextlib.suppress(OSError):
                    target.unlink()

    @staticmethod
    def _decrypt(reader: _HashingReader, output: BinaryIO, identity: Path) -> DecryptFailed | None:
        """Decrypt into ``output``, every stored byte hashed; what age refused, if it did."""
        from railguard.destinations.encryption import DecryptFailed, decrypt_stream

        refused = None
        try:
            decrypt_stream(reader, output, identity)  # type: ignore[arg-type]  # pyrage only calls read()
        except DecryptFailed as exc:
            refused = exc
        while reader.read(CHUNK):
            pass
        return refused

    def check_stored(self, generation: RemoteGeneration) -> None:
        """Without an identity: every object's stored bytes against the sha256 recorded for it."""
        for item in generation.objects:
            folder, base = self._folder(item.key)
            try:
                with folder.download(base) as stream:
                    reader = _HashingReader(stream)
                    while reader.read(CHUNK):
                        pass
            except RemoteBackupNotFound:
                raise self._broken(item.key, "is missing", [generation]) from None
            if reader.size != item.size or reader.sha256.hexdigest() != item.sha256:
                raise self._broken(item.key, "does not match its recorded sha256 (damaged at the destination)",
                                   [generation])

    # -- remove -----------------------------------------------------------------------------

    def remove_stale_temporaries(self, folders: Iterable[str], now: datetime,
                                 older_than_seconds: float = 86400) -> list[str]:
        """Temporary objects that uploads killed mid-way left in ``<stem>.pages`` and ``folders``,
        once clearly stale (age decides, as :meth:`Destination.remove_stale_temporaries`)."""
        removed = []
        for folder in sorted({"", *folders}):
            store = self._store_of(folder)
            for info in store.temporaries():
                if info.modified is not None and (now - info.modified).total_seconds() > older_than_seconds:
                    store.remove(info.key)
                    removed.append(f"{folder}/{info.key}" if folder else info.key)
        return removed

    def remove_documents(self, generations: Iterable[RemoteGeneration]) -> list[str]:
        removed = []
        for generation in generations:
            self.root.remove(generation.manifest_key)
            removed.append(generation.name)
        return removed

    def collect_garbage(self, generations: list[RemoteGeneration], folders: Iterable[str]) -> list[str]:
        """Remove the objects in ``folders`` that no document here names. Callers hold the
        replication lock: an upload in flight has objects its document does not name yet.

        ``generations`` is a fresh :meth:`held`; while a document there cannot be read, nothing
        is removed (it might name any object).
        """
        if any(generation.manifest is None for generation in generations):
            return []
        needed = {item.key for generation in generations for item in generation.objects}
        removed = []
        for key in sorted(self.listing(folders)):
            # Only what is named by a sha256 is an object: documents, and anything else, stay.
            if key not in needed and _DIGEST.match(key.rpartition("/")[2]):
                store, base = self._folder(key)
                store.remove(base)
                removed.append(key)
                fault_point("dest-gc")
        return removed


def object_folders(generations: Iterable[RemoteGeneration]) -> set[str]:
    return {item.key.rpartition("/")[0] for generation in generations for item in generation.objects}


def _known_objects(there: list[RemoteGeneration], encrypted: bool) -> dict[str, StoredObject]:
    """What the documents here record for each object (newest last wins)."""
    known = {}
    for generation in there:
        if generation.manifest is not None and generation.encrypted == encrypted:
            for item in generation.objects:
                known[item.key] = item
    return known


@contextlib.contextmanager
def _open_local(path: Path, generation: str) -> Iterator[BinaryIO]:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise VerifyFailed(f"generation {generation}: local object {path.name} is missing; not copied",
                           hint="Run: railguard backups verify --all") from None
    with os.fdopen(descriptor, "rb") as handle:
        yield handle


def _local_size(record: GenerationRecord, path: str) -> int | None:
    try:
        return os.stat(record.store / path, follow_symlinks=False).st_size
    except FileNotFoundError:
        return None


def _sha256_size(handle: BinaryIO) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
