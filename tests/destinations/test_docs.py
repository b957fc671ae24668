"""docs/destinations.md cannot drift: its configuration example loads, its commands exist."""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timezone
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
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    destination = Destination("nas", DestinationSettings(url=f"file://{nas}"))

    removed = destination.remove_stale_temporaries(datetime.now(timezone.utc))

    assert removed == [stale.name]
    assert sorted(p.name for p in nas.iterdir()) == [fresh.name]
    assert destination.list_backups() == []  # temporaries are never listed as backups
