"""The views: the same state as ``railguard status``, plus the history, read from their owners."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from web.conftest import (BACKUP_DAYS, COMMIT_MESSAGE, DEPLOY_COMMITS, DOWN_FROM, DOWN_UNTIL, DRILL_OUTPUT,
                          FAILED_DAY, GATE_SUMMARY, HEARTBEAT_VARS, PING_UUID, ROUNDS, Site)

from railguard.config import MaintenanceWindow
from railguard.errors import ExitCode
from railguard.status import collect_status
from railguard.web.model import AppNotFound, build_app, build_overview, build_public, plain, worst


def test_the_overview_has_the_state_that_railguard_status_reports(site: Site) -> None:
    overview = build_overview(site.settings, site.now)
    report = collect_status(site.settings, site.now)
    app, notes = overview.apps
    assert [row.as_dict(site.now) for row in app.rows] == [row.as_dict(site.now) for row in report.rows
                                                           if row.app == "tasks"]
    assert app.state == worst([row.state for row in report.rows if row.app == "tasks"])
    assert overview.state == worst([row.state for row in report.rows])
    assert app.newest_backup_at == site.now.replace(hour=3, minute=30)
    assert (app.name, app.state) == ("tasks", "ok")  # an older backup that failed its check flags nothing
    assert (notes.name, notes.state, notes.newest_backup_at) == ("notes", "flagged", None)
    assert overview.state == "flagged"


def test_the_app_view_has_the_rows_railguard_status_has_for_the_app(site: Site) -> None:
    view = build_app(site.settings, "tasks", site.now)
    report = collect_status(site.settings, site.now)
    assert [row.as_dict(site.now) for row in view.rows] == [row.as_dict(site.now) for row in report.rows
                                                            if row.app == "tasks"]


def test_the_app_view_has_thirty_days_of_backups_with_the_failed_verification(site: Site) -> None:
    view = build_app(site.settings, "tasks", site.now)
    assert len(view.backups) == BACKUP_DAYS
    failed = [mark for mark in view.backups if not mark.good]
    assert [mark.at for mark in failed] == [(site.now - timedelta(days=FAILED_DAY)).replace(hour=3, minute=30)]
    assert failed[0].status == "not verified"
    sizes = [mark.stored_bytes for mark in view.backups]
    assert all(size > 0 for size in sizes) and sizes == sorted(sizes)  # the database grew every day
    assert view.retention == "keep 7 daily, 4 weekly"
    newest = view.backups[-1]
    assert newest.retention == "keep" and any(reason.startswith("daily") for reason in newest.reasons)


def test_backups_older_than_thirty_days_leave_the_timeline(site: Site) -> None:
    newest = site.now.replace(hour=3, minute=30)
    view = build_app(site.settings, "tasks", newest + timedelta(days=29, hours=23))
    assert [mark.at for mark in view.backups] == [newest]  # the one before it is a day older


def test_drills_have_their_duration_and_result_and_never_their_output(site: Site) -> None:
    view = build_app(site.settings, "tasks", site.now)
    assert [(drill.passed, drill.seconds) for drill in view.drills] == [(True, 4.52), (False, 2.31)]
    assert view.drills[1].error == "health: /health did not answer 200 within 2s"
    assert DRILL_OUTPUT not in json.dumps(plain(view))
    # The daemon never ran this drill: its next run is at once (catch-up), as `railguard schedule` says.
    assert view.next_drill == site.now


def test_deploys_are_newest_first_with_their_outcome(site: Site) -> None:
    view = build_app(site.settings, "tasks", site.now)
    assert [(deploy.commit, deploy.result) for deploy in view.deploys] == [
        (DEPLOY_COMMITS[2][:12], "ok"), (DEPLOY_COMMITS[1][:12], "failed"), (DEPLOY_COMMITS[0][:12], "ok")]
    assert view.deploys[1].detail == "smoke check failed: /health 503"


def test_the_destination_shows_its_copies(site: Site) -> None:
    [destination] = build_app(site.settings, "tasks", site.now).destinations
    # Every verified backup went there; the one whose check failed did not.
    assert (destination.name, destination.state, destination.copies) == ("offsite", "ok", BACKUP_DAYS - 1)
    assert destination.last_copy_at == site.now - timedelta(hours=8)


def test_the_monitor_view_has_every_check_uptime_and_the_incident_with_its_duration(site: Site) -> None:
    [target] = build_overview(site.settings, site.now).targets
    assert len(target.points) == ROUNDS
    assert sum(not point.ok for point in target.points) == DOWN_UNTIL - DOWN_FROM
    assert target.uptime["24h"] == pytest.approx((ROUNDS - (DOWN_UNTIL - DOWN_FROM)) / ROUNDS)
    [incident] = target.incidents
    start = site.now - timedelta(minutes=ROUNDS)
    assert (incident.started_at, incident.ended_at) == (start + timedelta(minutes=DOWN_FROM),
                                                        start + timedelta(minutes=DOWN_UNTIL))
    assert incident.reason == "HTTP 503" and target.url == "http://127.0.0.1:9/health"


def test_the_public_view_has_uptime_and_outages_and_nothing_else(site: Site) -> None:
    public = build_public(site.settings, site.now)
    [target] = public.targets
    assert target.url is None and target.last_failure_reason is None
    assert [incident.reason for incident in target.incidents] == [""]
    text = json.dumps(plain(public))
    for private in ("127.0.0.1:9", "HTTP 503", DEPLOY_COMMITS[0][:12], "tasks-2026", "hunter2", COMMIT_MESSAGE,
                    GATE_SUMMARY, PING_UUID, *HEARTBEAT_VARS.values(), "heartbeat", "gate"):
        assert private not in text


def test_the_daemon_jobs_have_their_next_run(site: Site) -> None:
    jobs = {job.job: job for job in build_overview(site.settings, site.now).jobs}
    assert jobs["backup:tasks"].next_run == (site.now + timedelta(days=1)).replace(hour=3, minute=30)
    assert jobs["backup:tasks"].last_success == site.now.replace(hour=3, minute=30)
    assert jobs["monitor"].next_run is None and jobs["monitor"].schedule == "always running"


def test_an_unknown_app_is_not_found(site: Site) -> None:
    with pytest.raises(AppNotFound) as raised:
        build_app(site.settings, "nope", site.now)
    assert raised.value.exit_code == ExitCode.NOT_FOUND
    assert raised.value.message == "no app 'nope' in the configuration"


def test_a_day_of_checks_every_30_s_is_averaged_into_at_most_288_points(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from railguard.monitor.state import CheckResult, TargetState
    from railguard.monitor.store import MonitorStore

    store = MonitorStore(tmp_path / "monitor.sqlite3")
    end = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    start = end - timedelta(hours=24)
    # Every 100th check fails; response times alternate 10 and 20 ms.
    store.record([("app", "http://127.0.0.1/", CheckResult(index % 100 != 0, start + timedelta(seconds=30 * index),
                                                           "", 0.010 + (index % 2) / 100), TargetState())
                  for index in range(2880)])
    points = store.checks("app", start, end, at_most=288)
    assert len(points) == 288  # ten checks per slice of five minutes
    assert [point.at for point in points[:2]] == [start, start + timedelta(minutes=5)]
    assert all(point.response_time == pytest.approx(0.015) for point in points)
    assert sum(not point.ok for point in points) == 29  # the slices holding check 0, 100, ..., 2800
    assert len(store.checks("app", start, end, at_most=2880)) == 2880  # as they are when few enough


def test_maintenance_windows_say_whether_they_are_on(site: Site) -> None:
    monitor = site.settings.monitor.model_copy(update={"maintenance": [
        MaintenanceWindow(cron="0 11 * * *", duration=timedelta(hours=3)),
        MaintenanceWindow(cron="0 3 * * sun", duration=timedelta(hours=1))]})
    settings = site.settings.model_copy(update={"monitor": monitor, "timezone": "Europe/Madrid"})
    on, off = build_overview(settings, site.now).maintenance
    # 11:00 in Madrid is 10:00 UTC: on at 12:00 UTC, for three hours; Sunday 03:00 is not now (a Monday).
    assert (on.cron, on.active_since) == ("0 11 * * *", site.now.replace(hour=10))
    assert off.active_since is None


def test_each_heartbeat_has_its_variable_its_job_and_how_its_last_pings_went(site: Site) -> None:
    view = build_app(site.settings, "tasks", site.now)
    assert [(beat.job, beat.target, beat.daemon_job, beat.result, beat.last_ping_at) for beat in view.heartbeats] == [
        ("backup", "$TASKS_BACKUP_PING_URL", "backup:tasks", "ok", site.now.replace(hour=3, minute=30)),
        ("drill", "$TASKS_DRILL_PING_URL", "drill:tasks", "failed", site.now - timedelta(days=1, hours=8)),
        # Configured, never sent, and no daemon job: `railguard replicate` runs by hand or from cron.
        ("replicate", "$TASKS_REPLICATE_PING_URL", None, None, None)]
    backup, drill, _ = view.heartbeats
    assert (backup.pings, backup.failures, backup.last_failure) == (2, 0, "")
    # Both of the drill's pings (start, then the exit status 0) were answered 404, not retried.
    assert (drill.pings, drill.failures, drill.last_failure) == (2, 2, "HTTP 404 (ping 0)")
    assert build_overview(site.settings, site.now).heartbeats == view.heartbeats  # notes has none
    assert build_app(site.settings, "notes", site.now).heartbeats == []
    text = json.dumps(plain(build_overview(site.settings, site.now))) + json.dumps(plain(view))
    assert PING_UUID not in text and all(url not in text for url in site.ping_urls.values())


def test_each_deploy_a_gate_run_made_has_that_run_and_links_to_it_when_the_gate_says_where_it_is(site: Site) -> None:
    first, second = sorted(site.gate_runs.values())
    view = build_app(site.settings, "tasks", site.now)
    assert [(deploy.commit, deploy.gate_run, deploy.gate_status, deploy.gate_url) for deploy in view.deploys] == [
        (DEPLOY_COMMITS[2][:12], second, "deployed", None), (DEPLOY_COMMITS[1][:12], first, "rolled_back", None),
        (DEPLOY_COMMITS[0][:12], None, None, None)]  # made by hand
    gate = site.settings.gate.model_copy(update={"public_url": "http://127.0.0.1:8787/gate/"})
    linked = build_app(site.settings.model_copy(update={"gate": gate}), "tasks", site.now)
    assert [deploy.gate_url for deploy in linked.deploys] == [
        f"http://127.0.0.1:8787/gate/runs/{second}", f"http://127.0.0.1:8787/gate/runs/{first}", None]
    # The run's commit message and test summary stay on the gate.
    text = json.dumps(plain(linked))
    assert COMMIT_MESSAGE not in text and GATE_SUMMARY not in text


def test_a_protected_pre_deploy_snapshot_says_so_and_until_when(site: Site, serve) -> None:  # type: ignore[no-untyped-def]
    from railguard.backup.protection import protect
    from web.test_pages import get

    view = build_app(site.settings, "tasks", site.now)
    oldest = view.backups[0]
    until = site.now + timedelta(days=14)
    # What a pre-deploy snapshot leaves beside its backup (backup/protection.py's sidecar).
    protect(site.backups, oldest.name, f"pre-deploy snapshot for {DEPLOY_COMMITS[2][:12]}", until=until, now=site.now)
    [mark] = [mark for mark in build_app(site.settings, "tasks", site.now).backups if mark.name == oldest.name]
    expected = f"protected: pre-deploy snapshot for {DEPLOY_COMMITS[2][:12]} (until 2026-12-14 12:00 UTC)"
    assert (mark.retention, mark.protection) == ("keep", expected)
    _, html, _ = get(serve(site) + "/apps/tasks")
    assert f"<td>{oldest.name}</td>" in html and f"<td>{expected}</td></tr>" in html


def test_an_outage_during_a_deploy_names_it_in_the_views_but_never_on_the_public_page(site: Site) -> None:
    from railguard.monitor.state import CheckResult, TargetState
    from railguard.monitor.store import MonitorStore

    at = site.now - timedelta(minutes=1)
    down = TargetState(status="down", consecutive_failures=3, down_since=at, last_check_at=at, last_ok=False,
                       last_failure_at=at, last_failure_reason="HTTP 502")
    store = MonitorStore.in_state_dir(site.settings.state_dir)
    try:
        # As the monitor writes it in the round that turns the target DOWN inside a deploy window.
        store.record([("tasks", "http://127.0.0.1:9/health", CheckResult(False, at, "HTTP 502"), down)],
                     {"tasks": (43, f"during deploy 43 of {DEPLOY_COMMITS[2][:12]} (release)")})
    finally:
        store.close()
    [target] = build_overview(site.settings, site.now).targets
    newest = target.incidents[0]
    assert (newest.deploy_id, newest.deploy_note) == (43, f"during deploy 43 of {DEPLOY_COMMITS[2][:12]} (release)")
    assert plain(newest)["deploy_note"] == newest.deploy_note
    public = json.dumps(plain(build_public(site.settings, site.now)))
    assert "during deploy" not in public and DEPLOY_COMMITS[2][:12] not in public
