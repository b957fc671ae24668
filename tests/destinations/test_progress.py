"""Progress through replication and through reading copies back (verify, restore from a destination).

The per-backend stages (upload, read-back, download) are in the contract suite; here the
library calls the commands use pass the callback all the way down, at a real file:// destination.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from conftest import grow_with_random_rows
from destinations.test_cli import write_config
from progress_log import ProgressLog

from railguard.config import load_settings
from railguard.destinations import verify_remote
from railguard.destinations.replicate import replicate
from railguard.destinations.remote import fetched_for_restore
from railguard.destinations.configured import open_destination

pytestmark = pytest.mark.timeout(120)
NOW = datetime(2026, 11, 22, 3, 30, tzinfo=timezone.utc)


@pytest.fixture
def app(tmp_path, backups):  # type: ignore[no-untyped-def]
    """Two backups of a few MiB, and a file:// destination that holds none yet."""
    backups.create_database()
    grow_with_random_rows(backups.database, 2)
    backups.take("2026-11-20T03:30:00+00:00", rows=1)
    backups.take("2026-11-21T03:30:00+00:00", rows=1)
    (tmp_path / "nas").mkdir()
    settings = load_settings(write_config(tmp_path, backups.database, {"nas": {"url": f"file://{tmp_path}/nas"}}))
    name, app = settings.app()
    return settings, name, app


def test_replicate_reports_the_upload_and_read_back_of_every_copy_it_makes(app):
    settings, name, app_settings = app
    log = ProgressLog()

    [run] = replicate(settings, name, app_settings, now=NOW, progress=log)

    assert run.ok and len(run.copied) == 2
    sizes = [backup.size for backup in open_destination(app_settings, "nas").list_backups("tasks")]
    assert log.stages() == ["upload", "read-back", "upload", "read-back"]
    assert log.checked() == {"upload": sizes, "read-back": sizes}


def test_verifying_a_copy_there_reports_its_download_then_the_local_verification(app, tmp_path):
    settings, name, app_settings = app
    replicate(settings, name, app_settings, now=NOW)
    destination = open_destination(app_settings, "nas")
    latest = destination.stat_backup("latest", "tasks")
    log = ProgressLog()

    assert verify_remote(destination, latest, now=NOW, progress=log)["ok"]

    manifest = latest.manifest
    assert log.stages() == ["download", "read", "decompress", "check"]
    assert log.checked() == {"download": [latest.size], "read": [manifest.size_stored],
                             "decompress": [manifest.size_raw], "check": [manifest.size_raw]}


def test_restoring_from_a_destination_reports_the_download_first(app):
    settings, name, app_settings = app
    replicate(settings, name, app_settings, now=NOW)
    log = ProgressLog()

    with fetched_for_restore(app_settings, "nas", "latest", now=NOW, progress=log) as record:
        assert record.is_good

    assert log.checked() == {"download": [record.manifest.size_stored]}
