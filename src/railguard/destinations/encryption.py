"""Client-side encryption of copies with age (https://age-encryption.org), through pyrage.

A copy is encrypted on this host to one or more age recipients (public keys, fine to keep in
railguard.toml); only the holder of a matching identity (secret key file) can read it. The
storage never sees plaintext. Both directions stream in chunks: memory stays flat whatever
the size of the backup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from railguard.backup.compression import HashingWriter
from railguard.errors import ConfigError, VerifyFailed


class DecryptFailed(VerifyFailed):
    """The copy cannot be decrypted with the identity given (wrong key, or damaged data)."""


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


def encrypt_file(source: Path, target: BinaryIO, recipients: list[str]) -> tuple[str, int]:
    """Encrypt ``source`` into ``target``; returns the sha256 and size of the encrypted bytes."""
    pyrage = _pyrage()
    parsed = parse_recipients(recipients)
    writer = HashingWriter(target)
    with source.open("rb") as reader:
        try:
            pyrage.encrypt_io(reader, writer, parsed)
        except pyrage.EncryptError as exc:
            raise VerifyFailed(f"encrypting {source.name} failed: {exc}") from None
    target.flush()
    return writer.sha256.hexdigest(), writer.size


def decrypt_stream(source: BinaryIO, target: BinaryIO, identity_file: Path) -> None:
    pyrage = _pyrage()
    identities = read_identities(identity_file)
    try:
        pyrage.decrypt_io(source, target, identities)
    except pyrage.DecryptError as exc:
        raise DecryptFailed(f"cannot decrypt with {identity_file}: {exc}",
                            hint="Use the identity whose public key is in age_recipients") from None
    target.flush()


def generate_identity() -> tuple[str, str]:
    """A new (secret key line, public key); used by tests and by ``railguard`` docs' setup step."""
    pyrage = _pyrage()
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())
