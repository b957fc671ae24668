"""The daemon outlives idle connections and jobs that cannot start (issue 14, item 5).

Before: the endpoints ran on the standard library's ThreadingHTTPServer (a thread per
connection, no timeout), so idle connections used up the descriptors, /healthz stopped
answering and the next job start raised EMFILE out of the loop: the daemon exited.
"""

from __future__ import annotations

import errno
import resource
import socket
import subprocess
import sys
import threading
import urllib.request
from datetime import timedelta
from pathlib import Path

from daemon.test_daemon import free_port, runs, wait_for, write_config

from conftest import create_tasks_database
from railguard.daemon import Daemon, Job, RunLog
from railguard.schedule import Schedule

#: The daemon's own descriptor limit in the test: low enough that IDLE_CONNECTIONS reach it.
DAEMON_NOFILE = 256
IDLE_CONNECTIONS = 300


def _healthz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status
    except OSError:
        return None


def test_idle_connections_neither_silence_healthz_nor_stop_the_next_job(tmp_path: Path):
    database = create_tasks_database(tmp_path / "tasks.db")
    port = free_port()
    config = write_config(tmp_path, database, "every 1s", port)
    out, err = tmp_path / "daemon.out", tmp_path / "daemon.err"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def lower_the_descriptor_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_NOFILE, hard))

    with out.open("wb") as stdout, err.open("wb") as stderr:
        daemon = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config), "daemon"],
                                  stdout=stdout, stderr=stderr, preexec_fn=lower_the_descriptor_limit)
    idle: list[socket.socket] = []
    try:
        wait_for(lambda: _healthz(port) == 200, what="the daemon's endpoints")
        wait_for(lambda: any(r.result == "ok" for r in runs(tmp_path)), what="the first backup")
        # More connections than the daemon has descriptors: each one opens and sends nothing,
        # or half a request, and stays open.
        for number in range(IDLE_CONNECTIONS):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            if number % 2:
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            idle.append(connection)
        opened = max(r.id for r in runs(tmp_path))

        assert _healthz(port) == 200, "the daemon stopped answering /healthz"
        wait_for(lambda: any(r.id > opened and r.result == "ok" for r in runs(tmp_path)),
                 what="a backup started after the idle connections were opened")
        assert daemon.poll() is None, err.read_text()
    finally:
        for connection in idle:
            connection.close()
        daemon.terminate()
        daemon.wait(timeout=90)
    assert daemon.returncode == 0, err.read_text()
    assert "Traceback" not in err.read_text()


class FailingSpawn:
    """``subprocess.Popen`` that fails like a process out of descriptors, ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    def __call__(self, *args, **kwargs) -> subprocess.Popen:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OSError(errno.EMFILE, "Too many open files")
        return subprocess.Popen(*args, **kwargs)


def _run_in_thread(daemon: Daemon) -> threading.Thread:
    thread = threading.Thread(target=daemon.run, name="daemon-loop")
    thread.start()
    return thread


def test_a_job_whose_start_raises_emfile_is_recorded_failed_and_started_at_a_later_tick(tmp_path: Path):
    job = Job("quick", (sys.executable, "-c", "print('done')"), Schedule("every 1h", every=timedelta(hours=1)))
    log = RunLog(tmp_path / "daemon.db")
    lines: list[str] = []
    spawn = FailingSpawn(failures=3)
    daemon = Daemon([job], log, log=lines.append, spawn=spawn, stop_grace=timedelta(seconds=10))
    thread = _run_in_thread(daemon)
    try:
        wait_for(lambda: any(r.result == "ok" for r in log.runs("quick")), what="the job to start at last")
        assert thread.is_alive(), "the daemon's loop ended"
    finally:
        daemon.stop()
        thread.join(timeout=30)
    history = log.runs("quick")
    log.close()
    # One failed run for the streak of failed attempts, then the run that started.
    assert [r.result for r in history] == ["failed", "ok"]
    assert history[0].summary == "could not start: [Errno 24] Too many open files (3 attempts)"
    assert spawn.attempts == 4
    [failed] = [line for line in lines if "event=failed" in line]
    assert 'reason="could not start: [Errno 24] Too many open files"' in failed
    assert any("event=started" in line and "after_failed_attempts=3" in line for line in lines)


def test_a_job_with_a_missing_executable_never_ends_the_daemon(tmp_path: Path):
    every_hour = Schedule("every 1h", every=timedelta(hours=1))
    missing = Job("missing", (str(tmp_path / "no-such-program"),), every_hour)
    service = Job("service", (str(tmp_path / "no-such-service"),), None)
    fine = Job("fine", (sys.executable, "-c", "pass"), every_hour)
    log = RunLog(tmp_path / "daemon.db")
    lines: list[str] = []
    daemon = Daemon([missing, service, fine], log, log=lines.append, stop_grace=timedelta(seconds=10))
    thread = _run_in_thread(daemon)
    try:
        # Each missing program is tried again at every tick, while the other job runs.
        wait_for(lambda: all("attempts)" in r.summary for name in ("missing", "service") for r in log.runs(name))
                 and len(log.runs("missing")) == 1 and len(log.runs("service")) == 1,
                 what="failed starts retried at the next ticks")
        wait_for(lambda: any(r.result == "ok" for r in log.runs("fine")), what="the other job")
        assert thread.is_alive(), "the daemon's loop ended"
    finally:
        daemon.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    for name in ("missing", "service"):
        [run] = log.runs(name)
        assert run.result == "failed" and "No such file or directory" in run.summary, run
    log.close()
