"""Who has a SQLite database open: the check that stops a restore from replacing a live file.

Two independent ways, because each misses what the other sees:

* ``/proc/<pid>/fd``: every process of this PID namespace with the database, its ``-wal``,
  ``-shm`` or ``-journal`` open, idle or not. It cannot see processes in another container.
* SQLite's own POSIX locks, asked with ``F_GETLK`` (which takes no lock). In WAL mode every
  open connection holds a shared lock on the "DMS" byte of the ``-shm`` file for as long as it
  is open (offset 128: ``UNIX_SHM_BASE`` 120 + ``SQLITE_SHM_NLOCK`` 8, in os_unix.c); in
  rollback-journal mode a connection inside a transaction locks the bytes from
  ``PENDING_BYTE`` (0x40000000). POSIX locks are per kernel, so this also sees an app running
  in another container on the same host, through a shared volume.

Caution: closing any descriptor of a file drops every POSIX lock this process holds on it, so
these probes must never run while this process has its own connection to the database open.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

SHM_DMS_OFFSET = 128
PENDING_BYTE = 0x40000000
#: PENDING, RESERVED and the 510-byte SHARED range that follow it.
DATABASE_LOCK_SPAN = 2 + 510
_FLOCK = "hhqqi"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid


@dataclass(frozen=True)
class Holder:
    pid: int | None  # None when the lock belongs to a process we cannot name (0 from F_GETLK)
    command: str
    how: str  # "has tasks.db-wal open", "holds a SQLite lock on tasks.db-shm"

    def __str__(self) -> str:
        who = f"process {self.pid} ({self.command})" if self.pid else "a process outside this PID namespace"
        return f"{who} {self.how}"


def database_files(database: Path) -> list[Path]:
    return [database] + [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def find_holders(database: Path, *, proc: Path = Path("/proc")) -> list[Holder]:
    """Every process that has ``database`` (or its side files) open or locked, except this one."""
    holders = open_file_holders(database, proc=proc)
    named = {holder.pid for holder in holders}
    return holders + [h for h in lock_holders(database, proc=proc) if h.pid is None or h.pid not in named]


def open_file_holders(database: Path, *, proc: Path = Path("/proc")) -> list[Holder]:
    wanted = {os.path.realpath(path): path.name for path in database_files(database)}
    own = os.getpid()
    found: list[Holder] = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # the process ended, or belongs to a user we may not inspect
            continue
        for name in sorted({wanted[link] for link in links if link in wanted}):
            found.append(Holder(int(entry.name), _command(proc, int(entry.name)), f"has {name} open"))
    return found


def lock_holders(database: Path, *, proc: Path = Path("/proc")) -> list[Holder]:
    shm = database.with_name(database.name + "-shm")
    found: dict[int, Holder] = {}
    for path, start, length in ((shm, SHM_DMS_OFFSET, 1), (database, PENDING_BYTE, DATABASE_LOCK_SPAN)):
        pid = _locked_by(path, start, length)
        if pid is not None and pid not in found:  # F_GETLK names one holder per range; one line per process
            found[pid] = Holder(pid or None, _command(proc, pid) if pid else "?", f"holds a SQLite lock on {path.name}")
    return list(found.values())


def _locked_by(path: Path, start: int, length: int) -> int | None:
    """The pid holding a lock that would block a write lock on the range (0 if unknown), or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0))
    except OSError:
        return None
    finally:
        os.close(fd)
    kind, _, _, _, pid = struct.unpack(_FLOCK, answer)
    return None if kind == fcntl.F_UNLCK else pid


def _command(proc: Path, pid: int) -> str:
    try:
        return (proc / str(pid) / "comm").read_text().strip() or "?"
    except OSError:
        return "?"
