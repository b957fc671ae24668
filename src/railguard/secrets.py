"""Secrets come from the environment or from a file named by ``<VAR>_FILE``; never from
``railguard.toml``, never printed.

:class:`Secret` keeps the value out of ``repr``/``str``; :func:`redact` scrubs known secret
values from any text before it is logged or shown (an error message from a library may
echo a URL that carries a token).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from railguard.errors import ConfigError

MASK = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret(var: str, env: Mapping[str, str] = os.environ, *, required: bool = False) -> Secret | None:
    """``$VAR``, else the contents of the file named by ``$VAR_FILE`` (one trailing newline dropped)."""
    if env.get(var):
        return Secret(env[var])
    file_var = f"{var}_FILE"
    if env.get(file_var):
        path = Path(env[file_var])
        try:
            return Secret(path.read_text(encoding="utf-8").removesuffix("\n"))
        except OSError as exc:
            raise ConfigError(f"${file_var} names {path}, which cannot be read ({exc.strerror})",
                              hint=f"Point ${file_var} at a readable file") from None
    if required:
        raise ConfigError(f"the secret ${var} is not set",
                          hint=f"Export {var}, or put it in a file and export {file_var}=PATH")
    return None


def redact(text: str, secrets: Iterable[Secret | str | None]) -> str:
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    return text
