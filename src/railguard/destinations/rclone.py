"""``rclone:REMOTE:path``: every other backend rclone speaks (SFTP, WebDAV, Google Drive, ...).

railguard drives the installed ``rclone`` binary; the remote is configured the rclone way (its
config file, or ``RCLONE_CONFIG_<REMOTE>_*`` environment variables), so its credentials never
pass through railguard.toml. An upload streams into a hidden temporary name (``rclone rcat``)
and is renamed with ``rclone moveto`` only once complete, so the final name never shows half a
file; a killed upload leaves only a temporary name, which a later run removes once stale.
rclone's own retries (``--retries``, ``--low-level-retries``) handle transient errors: rclone
knows which errors of each backend are worth retrying.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import IO, BinaryIO

from railguard.backup.compression import CHUNK
from railguard.config import DestinationSettings
from railguard.destinations.base import (
    DestinationError, ListedStore, ObjectInfo, RemoteBackupNotFound, register, temp_key_for,
)
from railguard.errors import ConfigError

PREFIX = "rclone:"
_NOT_FOUND = ("directory not found", "object not found", "file does not exist", "no such file", "not found",
              "doesn't exist")
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:[A-Z]+ *: *)?")


@register(PREFIX)
def open_rclone_store(name: str, settings: DestinationSettings, env: Mapping[str, str],
                      redact: Callable[[str], str]) -> RcloneStore:
    target = settings.url[len(PREFIX):]
    if ":" not in target:
        raise ConfigError(f"destination {name}: {redact(settings.url)} names no rclone remote",
                          hint="Write it as rclone:REMOTE:path (a remote from `rclone listremotes`)")
    binary = shutil.which("rclone", path=env.get("PATH"))
    if binary is None:
        raise DestinationError(f"destination {name}: rclone is not installed (no rclone on PATH)",
                               hint="Install it: apt-get install rclone")
    return RcloneStore(name, binary, target.rstrip("/"), settings, dict(env), redact)


class RcloneStore(ListedStore):
    def __init__(self, name: str, binary: str, target: str, settings: DestinationSettings,
                 env: dict[str, str], redact: Callable[[str], str]) -> None:
        self.name, self.binary, self.target, self.env, self.redact = name, binary, target, env, redact
        seconds = max(1, int(settings.timeout.total_seconds()))
        self.flags = ["--retries", str(settings.attempts), "--low-level-retries", str(settings.attempts),
                      "--contimeout", f"{seconds}s", "--timeout", f"{seconds}s"]

    def child(self, path: str) -> RcloneStore:
        """The store of the folder ``path`` (``tasks.pages/packs``) inside this one; rclone makes
        folders as it uploads into them, and lists a missing one as empty (``missing_ok``)."""
        child = object.__new__(RcloneStore)
        child.__dict__.update(self.__dict__)
        child.target = self._path(path)
        return child

    def _path(self, key: str) -> str:
        return f"{self.target}{'' if self.target.endswith(':') else '/'}{key}"

    def _run(self, *args: str, action: str, missing_ok: bool = False) -> str:
        try:
            done = subprocess.run([self.binary, *args, *self.flags], capture_output=True, env=self.env,
                                  stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise DestinationError(f"destination {self.name}: cannot run rclone: {exc.strerror}",
                                   hint="Install it: apt-get install rclone") from None
        if done.returncode != 0:
            error = self._explain(done.stderr.decode("utf-8", "replace"), action)
            if missing_ok and isinstance(error, RemoteBackupNotFound):
                return ""
            raise error
        return done.stdout.decode("utf-8", "replace")

    def upload(self, key: str, source: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
        temp = self._path(temp_key_for(key))
        # rclone reading the file itself says nothing until it is done: to show progress, the
        # bytes go through its stdin instead, counted as rclone takes them.
        fileno = _regular_fileno(source) if progress is None else None
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen([self.binary, "rcat", temp, *self.flags],
                                       stdin=fileno if fileno is not None else subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=errors, env=self.env)
            try:
                if fileno is None:
                    assert process.stdin is not None
                    while chunk := source.read(CHUNK):
                        process.stdin.write(chunk)
                        if progress:
                            progress(len(chunk))
                    process.stdin.close()
                returncode = process.wait()
            except BaseException:
                process.kill()
                process.wait()
                self._remove_quietly(temp)
                raise
            if returncode != 0:
                self._remove_quietly(temp)
                raise self._explain(_read(errors), f"upload {key}")
        try:
            self._run("moveto", temp, self._path(key), action=f"rename {key}")
        except BaseException:
            self._remove_quietly(temp)
            raise

    def _remove_quietly(self, path: str) -> None:
        with contextlib.suppress(Exception):
            subprocess.run([self.binary, "deletefile", path, *self.flags], capture_output=True, env=self.env,
                           stdin=subprocess.DEVNULL, timeout=60)

    @contextlib.contextmanager
    def download(self, key: str) -> Iterator[BinaryIO]:
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen([self.binary, "cat", self._path(key), *self.flags], stdout=subprocess.PIPE,
                                       stderr=errors, stdin=subprocess.DEVNULL, env=self.env)
            assert process.stdout is not None
            try:
                yield process.stdout  # type: ignore[misc]  # a pipe's IO[bytes]: every read a BinaryIO has
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                process.stdout.close()
            if process.wait() != 0:
                raise self._explain(_read(errors), f"read {key}")

    def listing(self) -> list[ObjectInfo]:
        text = self._run("lsjson", "--files-only", "--no-mimetype", self.target, action="list", missing_ok=True)
        found = []
        for item in json.loads(text or "[]"):
            modified = datetime.fromisoformat(item["ModTime"]) if item.get("ModTime") else None
            found.append(ObjectInfo(item["Name"], int(item["Size"]), modified))
        return found


    def remove(self, key: str) -> None:
        self._run("deletefile", self._path(key), action=f"delete {key}", missing_ok=True)

    def _explain(self, stderr: str, action: str) -> DestinationError | RemoteBackupNotFound:
        lines = [line for line in stderr.splitlines() if line.strip() and "NOTICE: Config file" not in line]
        detail = self.redact(_last_error(lines))
        lowered = stderr.lower()
        where = f"destination {self.name} ({self.redact(PREFIX + self.target)})"
        if "didn't find section in config file" in lowered:
            return DestinationError(f"{where}: rclone has no remote by that name",
                                    hint="Configure it with `rclone config`, or RCLONE_CONFIG_<NAME>_TYPE=... variables")
        if "connection refused" in lowered:
            return DestinationError(f"{where}: {action} failed: connection refused",
                                    hint="Check that the remote's server is up and its host/port")
        if "i/o timeout" in lowered or "timeout" in lowered:
            return DestinationError(f"{where}: {action} timed out", hint="Check the network, or raise timeout")
        if "unable to authenticate" in lowered or "permission denied" in lowered or "401" in lowered:
            return DestinationError(f"{where}: the remote rejected the credentials or access ({detail})",
                                    hint="Check the remote's user and password in rclone's config")
        if any(marker in lowered for marker in _NOT_FOUND):
            return RemoteBackupNotFound(f"{where}: {action.split(' ', 1)[-1]} does not exist")
        return DestinationError(f"{where}: {action} failed: {detail or 'rclone exited with an error'}")


def _last_error(lines: list[str]) -> str:
    errors = [line for line in lines if "ERROR" in line or "Failed" in line or "error" in line.lower()]
    line = (errors or lines or [""])[-1]
    return _LOG_PREFIX.sub("", line).strip()[:300]


def _read(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def _regular_fileno(source: BinaryIO) -> int | None:
    """The OS file descriptor when rclone can read ``source`` itself (no copy through Python)."""
    try:
        fileno = source.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fileno).st_mode):
            return None
        # rclone reads from the descriptor's offset; align it with Python's buffered position.
        os.lseek(fileno, source.tell(), os.SEEK_SET)
    except OSError:
        return None
    return fileno
