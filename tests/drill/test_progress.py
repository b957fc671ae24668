"""Progress through a drill: the verification's stages, then the wait for the app's /health."""

from __future__ import annotations

from datetime import datetime, timezone

from progress_log import ProgressLog

from railguard.config import load_settings
from railguard.drill import run_drill


def test_a_drill_reports_verification_then_the_wait_for_health_out_of_its_start_timeout(site, clean_env):
    site.backup()
    settings = load_settings(site.configure(start_timeout="20s"))
    settings.state_dir = site.root / "state"
    name, app = settings.app()
    log = ProgressLog()

    report = run_drill(settings, name, app, now=datetime.now(timezone.utc), env={"PATH": "/usr/bin:/bin"},
                       progress=log)

    assert report.passed, report.reason
    assert log.stages() == ["read", "decompress", "check", "health"]
    # The wait counts milliseconds, and its total is the timeout it waits for at most.
    assert log.checked()["health"] == [20_000]
