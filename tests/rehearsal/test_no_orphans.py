"""A rehearsal never leaves the candidate's process or the copy behind, even when railguard is
killed with SIGKILL mid-rehearsal (the drill's watchdog, railguard.drill.process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from drill.sites import hanging_command, process_gone, wait_for_pids, wait_until
from rehearsal.candidates import AppRepository, make_production_database

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and PDEATHSIG: Linux")

TESTS = Path(__file__).resolve().parents[1]


def test_railguard_killed_mid_rehearsal_leaves_no_app_process_and_no_copy(tmp_path):
    repository = AppRepository.create(tmp_path / "repo")
    pids = tmp_path / "pids"
    # The candidate's app never serves: it records its pid and its child's, deaf to SIGTERM.
    commit = repository.commit("hangs at start", {"app.py": hanging_command(pids)[2]})
    production = make_production_database(tmp_path / "prod" / "data" / "tasks.db", rows=5)
    railguard_code = textwrap.dedent(f"""
        import sys
        from datetime import datetime, timezone
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        from rehearsal.candidates import AppRepository, app_settings, settings_for, take_verified_backup
        from railguard.rehearsal.rehearse import rehearse
        root, production = Path({str(tmp_path)!r}), Path({str(production)!r})
        app = app_settings(root, production, timeout="120s")
        backup = take_verified_backup(production, app.backup.directory)
        tar = AppRepository(root / "repo").archive({commit!r})
        rehearse(settings_for(app), "tasks", app, tar=tar, commit={commit!r}, backup=backup,
                 now=datetime.now(timezone.utc))
    """)
    railguard = subprocess.Popen([sys.executable, "-c", railguard_code], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    scratch = tmp_path / "scratch"
    try:
        app_pids = wait_for_pids(pids, 2)
        assert list(scratch.iterdir()), "the rehearsal's copy should exist while the app runs"
        railguard.kill()  # SIGKILL: no finally, no atexit, nothing of railguard runs any more
        railguard.wait()
        assert wait_until(lambda: all(process_gone(pid) for pid in app_pids)), \
            "the candidate's app (or its child) outlived railguard"
        assert wait_until(lambda: list(scratch.iterdir()) == []), "the copy outlived railguard"
    finally:
        if railguard.poll() is None:
            railguard.kill()
            railguard.wait()
