"""Client-side encryption of copies with age (https://age-encryption.org), through pyrage.

A copy is encrypted on this host to one or more age recipients (public keys, fine to keep in
railguard.toml); only the holder of a matching identity (secret key file) can read it. The
storage never sees plaintext. Both directions stream in chunks: memory stays flat whatever
the size of the backup.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from railguard.backup.compression import HashingWriter
from railguard.errors import ConfigError, VerifyFailed
from railguard.progress import CountingReader


class DecryptFailed(VerifyFailed):
    """age refused the copy: wrong identity, or damaged data (a header or a payload chunk that
    fails its check). Only the caller can tell which, by hashing the stored bytes against the
    manifest (:meth:`railguard.destinations.base.Destination.fetch` does)."""

    def __init__(self, message: str, *, hint: str | None = None, age_error: str = "", payload: bool = False) -> None:
        super().__init__(message, hint=hint)
        #: What age said ("No matching keys found", "decryption error", ...).
        self.age_error = age_error
        #: The header was accepted and a payload chunk failed (never a wrong identity).
        self.payload = payload


class _Watched:
    """Passes reads or writes through, keeping the exception the stream itself raised.

    pyrage reports a failing stream in its own words (a read error becomes
    ``DecryptError("OSError: ...")``), and a payload chunk that fails its check as a plain
    ``OSError("decryption error")`` with no errno, the same type as a full disk. Only the
    stream knows which of its calls failed, so only it can keep a full disk from passing for a
    damaged copy.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.error: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            return self.stream.read(n)
        except BaseException as exc:
            self.error = exc
            raise

    def write(self, data: bytes) -> int:
        try:
            return self.stream.write(data)
        except BaseException as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BaseException as exc:
            self.error = exc
            raise

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True


def _pyrage() -> Any:
    try:
        import pyrage
    except ImportError:
        raise ConfigError("age encryption needs the pyrage library, which is not installed",
                          hint="Install it: pip install 'railguard[encrypt]'") from None
    return pyrage


def parse_recipients(recipients: list[str]) -> list[Any]:
    pyrage = _pyrage()
    parsed = []
    for text in recipients:
        try:
            parsed.append(pyrage.x25519.Recipient.from_str(text.strip()))
        except pyrage.RecipientError as exc:
            shown = text if len(text) <= 24 else text[:20] + "..."
            raise ConfigError(f"age recipient {shown!r} is not a valid age public key ({exc})",
                              hint="Use the 'age1...' line printed by: age-keygen -y KEYFILE") from None
    return parsed


def read_identities(path: Path) -> list[Any]:
    """The ``AGE-SECRET-KEY-1...`` lines of an age identity file (``age-keygen`` output)."""
    pyrage = _pyrage()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"age identity file {path} cannot be read ({exc.strerror})",
                          hint="Pass --identity with the file written by age-keygen") from None
    identities = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            # The secret line itself never goes into a message.
            raise ConfigError(f"age identity file {path}: line {number} is not an age secret key",
                              hint="Expected lines starting with AGE-SECRET-KEY-1 (from age-keygen)") from None
    if not identities:
        raise ConfigError(f"age identity file {path} holds no AGE-SECRET-KEY line",
                          hint="Pass the file written by age-keygen, not the public key")
    return identities


def encrypt_file(source: Path, target: BinaryIO, recipients: list[str],
                 progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Encrypt ``source`` into ``target``; returns the sha256 and size of the encrypted bytes.
    ``progress`` gets the size of each piece of ``source`` read."""
    pyrage = _pyrage()
    parsed = parse_recipients(recipients)
    writer = HashingWriter(target)
    with source.open("rb") as plain:
        reader = plain if progress is None else CountingReader(plain, progress)
        try:
            pyrage.encrypt_io(reader, writer, parsed)
        except pyrage.EncryptError as exc:
            raise VerifyFailed(f"encrypting {source.name} failed: {exc}") from None
    target.flush()
    return writer.sha256.hexdigest(), writer.size


def decrypt_stream(source: BinaryIO, target: BinaryIO, identity_file: Path) -> None:
    """Decrypt ``source`` into ``target``.

    Raises what ``source`` or ``target`` raised when one of them failed (a dropped connection,
    a full disk), else :class:`DecryptFailed` when age refused the data.
    """
    pyrage = _pyrage()
    identities = read_identities(identity_file)
    reader, writer = _Watched(source), _Watched(target)
    try:
        pyrage.decrypt_io(reader, writer, identities)
        writer.flush()
    except Exception as exc:
        for stream in (writer, reader):
            if stream.error is not None:
                raise stream.error from None
        if not isinstance(exc, pyrage.DecryptError | OSError):
            raise
        # pyrage: DecryptError while reading the header (wrong key, damaged or cut header);
        # OSError from the payload reader once a chunk fails its authentication (age's STREAM).
        age_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecryptFailed(f"cannot decrypt with {identity_file}: {age_error}",
                            hint="Use the identity whose public key is in age_recipients",
                            age_error=age_error, payload=not isinstance(exc, pyrage.DecryptError)) from None


def generate_identity() -> tuple[str, str]:
    """A new (secret key line, public key); used by tests and by ``railguard`` docs' setup step."""
    pyrage = _pyrage()
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())
