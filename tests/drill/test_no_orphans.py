"""A drill never leaves a process behind: not when railguard is interrupted, not when it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from drill.sites import hanging_command, process_gone, wait_for_pids, wait_until

from railguard.drill import process

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and PDEATHSIG: Linux")


def start_railguard(site, *args: str) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAILGUARD_")}
    return subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(site.config), "drill", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_railguard_killed_mid_drill_leaves_no_app_process_and_no_copy(site, tmp_path):
    site.backup()
    pids = tmp_path / "pids"
    site.configure(command=hanging_command(pids), start_timeout="60s", stop_grace="1s")
    railguard = start_railguard(site)
    try:
        app_pids = wait_for_pids(pids, 2)
        assert site.scratch_entries(), "the drill's copy should exist while the app runs"
        railguard.kill()  # SIGKILL: no finally, no atexit, nothing of railguard runs any more
        railguard.wait()
        assert wait_until(lambda: all(process_gone(pid) for pid in app_pids)), \
            "the app (or its child) outlived railguard"
        assert wait_until(lambda: site.scratch_entries() == []), "the copy outlived railguard"
    finally:
        if railguard.poll() is None:
            railguard.kill()
            railguard.wait()


def test_sigterm_mid_drill_stops_the_app_and_records_an_interrupted_drill(site, tmp_path):
    site.backup()
    pids = tmp_path / "pids"
    site.configure(command=hanging_command(pids, ignore_sigterm=False), start_timeout="60s", stop_grace="2s")
    railguard = start_railguard(site)
    try:
        app_pids = wait_for_pids(pids, 2)
        railguard.send_signal(signal.SIGTERM)
        railguard.wait(timeout=30)
        assert railguard.returncode == 130
        # railguard itself stopped them before exiting (the watchdog was told it had nothing to do).
        assert all(process_gone(pid) for pid in app_pids)
        [line] = site.drill_log()
        assert line["result"] == "interrupted" and line["step"] == "health"
        assert site.scratch_entries() == []
    finally:
        if railguard.poll() is None:
            railguard.kill()
            railguard.wait()


def test_the_app_dies_with_its_parent_even_without_the_watchdog(tmp_path):
    """PR_SET_PDEATHSIG: the kernel kills the direct child when the process that started it dies."""
    pid_file = tmp_path / "child"
    parent_code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from railguard.drill import process
        child = process.spawn([sys.executable, "-c", "import time; time.sleep(600)"], env={{}}, cwd=None,
                              output=open("/dev/null", "wb"))
        Path({str(pid_file)!r}).write_text(str(child.pid))
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        [child] = wait_for_pids(pid_file, 1)
        assert not process_gone(child)
        parent.kill()
        parent.wait()
        assert wait_until(lambda: process_gone(child)), "the child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_the_watchdog_kills_the_group_when_its_pipe_closes_without_done(tmp_path):
    output = (tmp_path / "out").open("wb")
    leader = process.spawn([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                            "signal.SIG_IGN); time.sleep(600)"], env={}, cwd=None, output=output)
    watchdog = process.Watchdog()
    try:
        watchdog.watch_group(leader.pid, grace=0.5)
        watchdog.trigger()
        assert wait_until(lambda: leader.poll() is not None), "the watchdog did not kill the group"
        assert leader.returncode == -signal.SIGKILL
    finally:
        if leader.poll() is None:
            leader.kill()
        leader.wait()
        watchdog.release()


def test_a_released_watchdog_leaves_the_group_alone(tmp_path):
    output = (tmp_path / "out").open("wb")
    leader = process.spawn([sys.executable, "-c", "import time; time.sleep(600)"], env={}, cwd=None, output=output)
    try:
        watchdog = process.Watchdog()
        watchdog.watch_group(leader.pid, grace=0.5)
        watchdog.release()
        assert leader.poll() is None
        stopped = process.stop_group(leader, grace=5)
        assert stopped.exit_code == -signal.SIGTERM and not stopped.killed
    finally:
        if leader.poll() is None:
            leader.kill()
        leader.wait()


def test_stop_group_kills_children_that_ignore_sigterm_after_their_leader_exits(tmp_path):
    pid_file = tmp_path / "child"
    code = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(600)
    """)
    leader = process.spawn([sys.executable, "-c", code], env={}, cwd=None, output=(tmp_path / "out").open("wb"))
    [child] = wait_for_pids(pid_file, 1)
    stopped = process.stop_group(leader, grace=1)
    assert stopped.killed
    assert wait_until(lambda: process_gone(child))
    assert not Path(f"/proc/{leader.pid}").exists() or process_gone(leader.pid)
