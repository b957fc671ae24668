"""The metrics count page generations as backups, and say the recovery point: scraped from
``/metrics`` on a real server on 127.0.0.1, over a real page store."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from web.conftest import DAMAGED_GENERATION, GENERATION_MINUTES, PagesSite, build_pages_site

from railguard.metrics.exposition import serve_metrics

RECOVERY_HELP = "Age of the newest verified backup of either kind (whole-file or page generation)."


@pytest.fixture
def scrape(tmp_path: Path) -> Iterator[tuple[PagesSite, dict[str, float], dict[str, tuple[str, str]]]]:
    """The pages site, and one scrape of its ``/metrics``: each sample's value (by name, for
    app="tasks") and each family's type and help."""
    site = build_pages_site(tmp_path)
    server = serve_metrics(site.settings, "127.0.0.1", 0, clock=lambda: site.now)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=60) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    families = list(text_string_to_metric_families(text))
    values = {sample.name: sample.value for family in families for sample in family.samples
              if sample.labels.get("app") == "tasks"}
    yield site, values, {family.name: (family.type, family.documentation) for family in families}


def test_the_recovery_point_gauge_is_the_age_of_the_newest_verified_generation(scrape) -> None:  # type: ignore[no-untyped-def]
    site, values, families = scrape
    assert families["railguard_recovery_point_seconds"] == ("gauge", RECOVERY_HELP)
    assert values["railguard_recovery_point_seconds"] == GENERATION_MINUTES[DAMAGED_GENERATION - 1] * 60.0


def test_the_backup_families_count_generations_as_backups(scrape) -> None:  # type: ignore[no-untyped-def]
    site, values, _ = scrape
    newest_good = site.manifests[DAMAGED_GENERATION - 1]
    assert values["railguard_backup_last_success_timestamp_seconds"] == newest_good.created.timestamp()
    assert values["railguard_backup_last_size_bytes"] == newest_good.new_bytes
    assert values["railguard_backup_last_raw_size_bytes"] == newest_good.page_size * newest_good.page_count
    # Every verified generation and the one whole-file backup; the newest backup is the damaged generation.
    assert values["railguard_backup_verified_count"] == len(site.manifests) - 1 + 1
    assert values["railguard_backup_last_verify_success"] == 0
