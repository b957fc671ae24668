"""The progress bar as a user sees it: on a terminal, in MiB; off a terminal, or with --json or
--quiet, nothing at all.

The terminal is a real pseudo-terminal (``os.openpty``) on railguard's stderr, in a real
``python -m railguard`` process. rich draws the bar once more when it stops (rich/live.py,
``Live.stop`` refreshes before it erases a transient display), so the last state of the last
stage is always on the terminal, however fast the machine: nothing here waits for a refresh.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import create_tasks_database, grow_with_random_rows

pytestmark = pytest.mark.timeout(180)
#: rich's cursor and colour escapes, removed before reading the bar's text.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    database = create_tasks_database(data / "tasks.db")
    grow_with_random_rows(database, 3)
    path = tmp_path / "railguard.toml"
    path.write_text(f'[apps.tasks]\ndatabase = "{database}"\n[apps.tasks.backup]\n'
                    f'directory = "{tmp_path / "backups"}"\nprune = false\nkeep_manual = "0s"\n')
    return path


def environment(tmp_path: Path) -> dict[str, str]:
    # Nothing from the caller's environment that would steer rich or railguard.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "TERM": "xterm-256color",
            "LANG": "C.UTF-8"}


def on_a_terminal(args: list[str], tmp_path: Path) -> tuple[int, str, str]:
    """Run ``railguard ARGS`` with stderr on a pseudo-terminal; returns (exit code, stdout, terminal)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "railguard", *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=slave, env=environment(tmp_path), cwd=tmp_path)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process closed its end of the terminal (it exited)
                break
            if not data:
                break
            seen += data
        assert process.stdout is not None
        stdout = process.stdout.read().decode()
        code = process.wait(timeout=60)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, stdout, ESCAPES.sub(" ", seen.decode("utf-8", "replace"))


def test_a_backup_on_a_terminal_draws_its_bar_in_mib_with_real_totals(config: Path, tmp_path: Path) -> None:
    code, stdout, terminal = on_a_terminal(["backup", "--config", str(config)], tmp_path)

    assert code == 0, terminal
    assert stdout.startswith("backup ")
    # The last stage drawn: the check, done, in the same unit as the summary on stdout.
    summary_size = re.search(r"\(([0-9.]+ MiB) →", stdout)
    assert summary_size is not None, stdout
    size = re.escape(summary_size[1])
    assert re.search(rf"checking\s+━+\s+{size} / {size}\s", terminal), terminal
    assert " MB" not in terminal and "?" not in terminal, terminal


def test_verify_on_a_terminal_draws_its_bar_in_mib(config: Path, tmp_path: Path) -> None:
    assert on_a_terminal(["backup", "--config", str(config)], tmp_path)[0] == 0

    code, stdout, terminal = on_a_terminal(["backups", "verify", "--config", str(config)], tmp_path)

    assert code == 0, terminal
    assert stdout.startswith("ok ")
    assert re.search(r"checking\s+━+\s+[0-9.]+ MiB / [0-9.]+ MiB\s", terminal), terminal


@pytest.mark.parametrize("flag", ["--json", "--quiet"])
def test_json_or_quiet_draws_no_bar_even_on_a_terminal(config: Path, tmp_path: Path, flag: str) -> None:
    code, _, terminal = on_a_terminal(["backup", "--config", str(config), flag], tmp_path)

    assert code == 0, terminal
    assert terminal.strip() == ""


def test_off_a_terminal_stderr_has_no_bar(config: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "railguard", "backup", "--config", str(config)],
                          stdin=subprocess.DEVNULL, capture_output=True, env=environment(tmp_path), cwd=tmp_path,
                          timeout=150)

    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert done.stdout.decode().startswith("backup ")


def test_restore_and_replicate_on_a_terminal_draw_their_last_stage_in_mib(config: Path, tmp_path: Path) -> None:
    assert on_a_terminal(["backup", "--config", str(config)], tmp_path)[0] == 0
    (tmp_path / "nas").mkdir()  # added after the backup: replicate has one to copy
    config.write_text(config.read_text() + f'[apps.tasks.destinations.nas]\nurl = "file://{tmp_path / "nas"}"\n')

    code, stdout, terminal = on_a_terminal(["replicate", "--config", str(config)], tmp_path)
    assert code == 0, terminal
    assert "copied 1" in stdout
    assert re.search(r"reading back\s+━+\s+[0-9.]+ MiB / [0-9.]+ MiB\s", terminal), terminal
    restored = tmp_path / "restored.db"
    code, stdout, terminal = on_a_terminal(["restore", "--config", str(config), "--to", str(restored)], tmp_path)
    assert code == 0, terminal
    assert stdout.startswith("restored ")
    assert re.search(r"checking\s+━+\s+[0-9.]+ MiB / [0-9.]+ MiB\s", terminal), terminal
    code, stdout, terminal = on_a_terminal(["restore", "--config", str(config), "--dest", "nas",
                                            "--to", str(tmp_path / "from-nas.db")], tmp_path)
    assert code == 0, terminal
    assert re.search(r"checking\s+━+\s+[0-9.]+ MiB / [0-9.]+ MiB\s", terminal), terminal


def test_a_backup_with_a_destination_ends_its_bar_on_the_copy_read_back(config: Path, tmp_path: Path) -> None:
    (tmp_path / "nas").mkdir()
    config.write_text(config.read_text() + f'[apps.tasks.destinations.nas]\nurl = "file://{tmp_path / "nas"}"\n')

    code, stdout, terminal = on_a_terminal(["backup", "--config", str(config)], tmp_path)

    assert code == 0, terminal
    assert "destination nas: copied" in stdout
    assert re.search(r"reading back\s+━+\s+[0-9.]+ MiB / [0-9.]+ MiB\s", terminal), terminal
