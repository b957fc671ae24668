"""An app whose backups are page generations (``kind = "pages"``, docs/pages.md): the status page
shows its recovery point, the age of the newest verified generation, and lists its generations
in the backups panel as retention decides them, from a real page store."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from datetime import timedelta

from web.conftest import DAMAGED_GENERATION, GENERATION_KEEP_LAST, GENERATION_MINUTES, PagesSite, Site

from railguard.backup.catalog import Owner
from railguard.retention import Policy, prune_generations
from railguard.retention.policy import NOT_KEPT
from railguard.status import collect_status
from railguard.web.model import build_app, build_overview
from railguard.web.pages import Pages


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.status == 200
        return response.read().decode()


def recovery_points(page: str) -> list[tuple[str, str]]:
    """Each recovery point on a page: its label, then its state class and the age it shows."""
    labels = re.findall(r'<p class="muted recovery-label">([^<]*)</p>', page)
    ages = re.findall(r'<p class="big backup-age ([a-z]+)">([^<]*)</p>', page)
    assert len(labels) == len(ages)
    return [(label, f"{state}: {age}") for label, (state, age) in zip(labels, ages)]


def test_the_recovery_point_is_the_age_of_the_newest_verified_generation(pages_site: PagesSite) -> None:
    view = build_app(pages_site.settings, "tasks", pages_site.now)
    newest_good = pages_site.manifests[DAMAGED_GENERATION - 1]  # the newest is not verified
    point = view.recovery_point
    assert (point.at, point.age, point.state, point.kind) == (
        newest_good.created, timedelta(minutes=GENERATION_MINUTES[DAMAGED_GENERATION - 1]), "ok", "pages")
    assert view.newest_backup_at == newest_good.created
    # The overview's card says the same as the app's own page, and as railguard status's backup row.
    [summary] = build_overview(pages_site.settings, pages_site.now).apps
    assert summary.recovery_point == point
    [backup_row] = [row for row in collect_status(pages_site.settings, pages_site.now).rows if row.name == "backup"]
    assert (backup_row.at, backup_row.state) == (point.at, point.state)


def test_a_recovery_point_older_than_backup_max_age_is_failing_on_both_pages(pages_site: PagesSite) -> None:
    newest_good = pages_site.manifests[DAMAGED_GENERATION - 1]
    later = newest_good.created + pages_site.settings.status.backup_max_age + timedelta(minutes=1)
    view = build_app(pages_site.settings, "tasks", later)
    assert (view.recovery_point.state, view.state) == ("flagged", "flagged")
    [summary] = build_overview(pages_site.settings, later).apps
    assert (summary.recovery_point.state, summary.state) == ("flagged", "flagged")
    pages = Pages()
    label = "recovery point (newest verified generation)"
    assert recovery_points(pages.app(view)) == [(label, "flagged: 1d 2h ago")]
    assert recovery_points(pages.overview(build_overview(pages_site.settings, later))) == [
        (label, "flagged: 1d 2h ago")]


def test_the_backups_panel_lists_each_generation_with_its_pages_new_bytes_and_check(pages_site: PagesSite) -> None:
    view = build_app(pages_site.settings, "tasks", pages_site.now)
    assert [mark.name for mark in view.backups] == [pages_site.file_backup,
                                                     *[manifest.name for manifest in pages_site.manifests]]
    whole, *generations = view.backups
    assert (whole.kind, whole.pages, whole.good) == ("file", None, True) and whole.stored_bytes > 0
    for mark, manifest in zip(generations, pages_site.manifests):
        assert (mark.kind, mark.at, mark.pages, mark.stored_bytes) == (
            "generation", manifest.created, manifest.page_count, manifest.new_bytes)
    # The first generation stored the whole database; each one after it only the pages it changed.
    first, *later = generations
    assert all(0 < mark.stored_bytes < first.stored_bytes for mark in later)
    damaged = generations[DAMAGED_GENERATION]
    assert (damaged.good, damaged.status) == (False, "not verified")
    assert [mark.good for mark in generations] == [True] * (len(generations) - 1) + [False]


def test_each_generation_is_kept_or_removed_as_the_apps_prune_would_decide(pages_site: PagesSite) -> None:
    view = build_app(pages_site.settings, "tasks", pages_site.now)
    app = pages_site.settings.apps["tasks"]
    policy = Policy.from_settings(app.retention)
    assert view.retention == str(policy) == f"keep {GENERATION_KEEP_LAST} last"
    plan = prune_generations(pages_site.backups, Owner.of(pages_site.settings, "tasks", app), policy,
                             now=pages_site.now, tz=pages_site.settings.timezone, dry_run=True).plan
    decided = {decision.name: decision for decision in plan.decisions}
    whole, *generations = view.backups
    # A kind = "pages" app prunes its generations only: its old whole-file backup has no decision.
    assert (whole.retention, whole.reasons) == (None, ())
    for mark in generations:
        assert (mark.retention, mark.reasons) == (decided[mark.name].action, decided[mark.name].reasons)
    protected, removed, second, first, damaged = generations
    assert (protected.retention, protected.protection) == ("keep", decided[protected.name].protection.describe())
    assert "before the migration" in (protected.protection or "")
    assert (removed.retention, removed.reasons) == ("remove", (NOT_KEPT,))
    assert [(mark.retention, mark.reasons) for mark in (first, second)] == [("keep", ("last #1",)),
                                                                              ("keep", ("last #2",))]
    assert damaged.retention == "leave"


def test_the_pages_over_http_show_the_recovery_point_and_the_generations(
        pages_site: PagesSite, serve: Callable[..., str]) -> None:
    base = serve(pages_site)
    minutes = GENERATION_MINUTES[DAMAGED_GENERATION - 1]
    label = "recovery point (newest verified generation)"
    assert recovery_points(get(f"{base}/")) == [(label, f"ok: {minutes}m ago")]
    page = get(f"{base}/apps/tasks")
    assert recovery_points(page) == [(label, f"ok: {minutes}m ago")]
    rows = re.findall(r'<tr class="(ok|flagged) generation"><td>([^<]*)</td>', page)
    assert sorted(name for _, name in rows) == sorted(manifest.name for manifest in pages_site.manifests)
    assert [state for state, name in rows if name == pages_site.manifests[DAMAGED_GENERATION].name] == ["flagged"]
    newest = pages_site.manifests[DAMAGED_GENERATION - 1]
    assert f"<td>{newest.page_count}</td>" in page
    document = json.loads(get(f"{base}/api/apps/tasks"))
    assert document["recovery_point"] == {"at": newest.created.isoformat(), "age": minutes * 60.0,
                                          "state": "ok", "kind": "pages"}
    assert [mark["pages"] for mark in document["backups"] if mark["kind"] == "generation"] == [
        manifest.page_count for manifest in pages_site.manifests]


def test_a_whole_file_app_keeps_its_newest_verified_backup_label(site: Site) -> None:
    page = Pages().app(build_app(site.settings, "tasks", site.now))
    assert recovery_points(page) == [("newest verified backup", "ok: 8h 30m ago")]
    assert build_app(site.settings, "tasks", site.now).recovery_point.kind == "file"
