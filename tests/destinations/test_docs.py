"""docs/destinations.md cannot drift: its configuration example loads, its commands exist."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from railguard.config import DestinationSettings, load_settings
from railguard.destinations import Destination
from railguard.destinations.encryption import parse_recipients

DOC = Path(__file__).resolve().parents[2] / "docs" / "destinations.md"


def test_the_configuration_example_in_the_docs_is_valid(tmp_path):
    [example] = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    path = tmp_path / "railguard.toml"
    path.write_text(example)

    settings = load_settings(path)

    destinations = settings.apps["tasks"].destinations
    assert {name: d.url.split(":")[0] for name, d in destinations.items()} == {
        "nas": "file", "offsite": "s3", "office": "rclone"}
    assert destinations["offsite"].retention is not None and destinations["offsite"].retention.keep_monthly == 12
    assert len(parse_recipients(destinations["offsite"].age_recipients)) == 1


@pytest.mark.parametrize("command, option", [
    (["replicate"], "--dest"), (["replicate"], "--all"), (["replicate"], "--prune"),
    (["backups", "list"], "--dest"), (["backups", "verify"], "--dest"), (["backups", "verify"], "--identity"),
    (["restore"], "--dest"), (["restore"], "--identity"),
])
def test_every_command_the_docs_show_exists_with_help(run_cli, command, option):
    result = run_cli(*command, "--help")

    assert result.exit_code == 0
    assert option in result.stdout
    text = DOC.read_text()
    assert f"railguard {' '.join(command)}" in text and option in text


def test_stale_temporaries_of_killed_uploads_are_removed_once_a_day_old(tmp_path):
    nas = tmp_path / "nas"
    nas.mkdir()
    stale = nas / ".tasks-20261120-0330.sqlite3.zst.tmp-4242-abcdef"
    fresh = nas / ".tasks-20261121-0330.sqlite3.zst.tmp-4243-abcdef"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"in progress")
    # Both ages set from the "now" passed in, not from the wall clock: a clock that is not the
    # file system's (a test under faketime, an NTP step) must not make the fresh one look stale.
    now = datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc)
    for path, age in ((stale, timedelta(days=2)), (fresh, timedelta(hours=1))):
        os.utime(path, ((now - age).timestamp(),) * 2)
    destination = Destination("nas", DestinationSettings(url=f"file://{nas}"))

    removed = destination.remove_stale_temporaries(now)

    assert removed == [stale.name]
    assert sorted(p.name for p in nas.iterdir()) == [fresh.name]
    assert destination.list_backups() == []  # temporaries are never listed as backups
