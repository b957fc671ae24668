"""The pure parts of the drill: assertions, the metrics verdict, the launch plan, the settings."""

from __future__ import annotations

import re

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from local_http import LocalServer

from railguard.config import DrillSettings, load_settings
from railguard.drill import DrillNotConfigured, DrillTouchesProduction, plan_launch
from railguard.drill.assertions import evaluate, parse_expectation, parse_timestamp
from railguard.drill.serving import Answer, judge_metrics, wait_for_health
from railguard.errors import ConfigError

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("value", "expect", "ok", "detail"), [
    (25, "> 0", True, "25 is > 0"),
    (0, "> 0", False, "0 is not > 0"),
    (100, ">= 100", True, "100 is >= 100"),
    (3.5, "< 3", False, "3.5 is not < 3"),
    (1, "== 1", True, "1 is == 1"),
    (1, "!= 1", False, "1 is not != 1"),
    (None, "> 0", False, "returned None, not a number (expected > 0)"),
    ("12", "> 0", False, "returned '12', not a number (expected > 0)"),
])
def test_expect_compares_the_value_with_a_number(value, expect, ok, detail):
    result = evaluate("SELECT x", value, expect=expect, max_age=None, now=NOW)
    assert (result.ok, result.detail) == (ok, detail)


@pytest.mark.parametrize(("value", "ok"), [
    ("2026-11-26T20:00:00Z", True),            # 8 h old
    ("2026-11-26 20:00:00", True),             # no offset: UTC
    ("2026-11-25T04:00:00+00:00", False),      # 48 h old
    (int(datetime(2026, 11, 27, 3, tzinfo=timezone.utc).timestamp()), True),          # epoch seconds
    (int(datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp() * 1000), False),     # epoch milliseconds
    (None, False),                             # an empty table: max() is NULL
    ("yesterday", False),
])
def test_max_age_reads_iso_text_and_epoch_numbers(value, ok):
    result = evaluate("SELECT max(at) FROM t", value, expect=None, max_age=timedelta(hours=36), now=NOW)
    assert result.ok is ok, result.detail


def test_timestamps_in_milliseconds_and_seconds_mean_the_same_moment():
    moment = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    assert parse_timestamp(moment.timestamp()) == parse_timestamp(moment.timestamp() * 1000) == moment


@pytest.mark.parametrize("text", ["0", "> zero", "=> 1", "> 1 2", ""])
def test_a_malformed_expectation_names_the_accepted_form(text):
    with pytest.raises(ValueError, match="operator .* and a number"):
        parse_expectation(text)


def metrics(text: str, status: int = 200) -> Answer:
    return Answer(status, text)


STARTED_MS = 1_700_000_000_000


@pytest.mark.parametrize(("answer", "ok", "detail"), [
    (metrics(f"migrations_ok 1\napp_started_at {STARTED_MS + 500}\n"), True,
     "migrations_ok 1, app_started_at matches the started process"),
    (metrics(f"migrations_ok 0\napp_started_at {STARTED_MS + 500}\n"), False,
     "migrations_ok is 0, not 1: the migrations did not apply"),
    (metrics(f"migrations_ok 1\napp_started_at {STARTED_MS - 60_000}\n"), False,
     f"app_started_at is {STARTED_MS - 60_000}, before the drill started the app: another process answers on "
     "the drill's port"),
    (metrics("other_metric 3\n"), True, "migrations_ok not exposed"),
    (metrics("", status=404), True, "not exposed (404)"),
    (metrics("boom", status=500), False, "metrics answered HTTP 500 'boom'"),
    (metrics("this is { not prometheus\n"), False, "metrics are not valid Prometheus text"),
])
def test_the_metrics_verdict(answer, ok, detail):
    verdict = judge_metrics(answer, migrations_metric="migrations_ok", started_metric="app_started_at",
                            started_not_before_ms=STARTED_MS)
    assert verdict.ok is ok
    assert verdict.detail.startswith(detail)


PRODUCTION = Path("/srv/app/data/tasks.db")
COPY = Path("/tmp/railguard-drill-tasks-x/data/tasks.db")


def test_a_command_gets_the_copy_and_the_port_through_its_placeholders():
    drill = DrillSettings(command=["bun", "run", "index.ts", "--db={db}"], env={"DB_PATH": "{db}", "DATA": "{dir}"},
                          workdir="/srv/app/src")
    plan = plan_launch(drill, app_name="tasks", copy=COPY, port=4321, production_db=PRODUCTION,
                       environ={"PATH": "/usr/bin", "HOME": "/root", "CAPROVER_PASSWORD": "s3cret",
                                "DB_PATH": str(PRODUCTION)})
    assert plan.argv == ["bun", "run", "index.ts", f"--db={COPY}"]
    assert plan.env == {"PATH": "/usr/bin", "HOME": "/root", "PORT": "4321", "DB_PATH": str(COPY),
                        "DATA": str(COPY.parent)}
    assert plan.cwd == "/srv/app/src"


def test_other_braces_in_a_command_pass_through_unchanged():
    drill = DrillSettings(command=["python3", "-c", "print({'port': {port}})"])
    plan = plan_launch(drill, app_name="tasks", copy=COPY, port=80, production_db=PRODUCTION, environ={})
    assert plan.argv[-1] == "print({'port': 80})"


def test_port_can_be_renamed_through_env():
    drill = DrillSettings(command=["app"], env={"PORT": "9", "LISTEN": "127.0.0.1:{port}"})
    plan = plan_launch(drill, app_name="tasks", copy=COPY, port=5000, production_db=PRODUCTION, environ={})
    assert plan.env["PORT"] == "9" and plan.env["LISTEN"] == "127.0.0.1:5000"


def test_docker_mode_mounts_the_copy_as_the_data_directory_on_the_host_network():
    drill = DrillSettings(image="tasks-app:drill", env={"HOST": "127.0.0.1", "DB_PATH": "{db}"})
    plan = plan_launch(drill, app_name="tasks", copy=COPY, port=4321, production_db=PRODUCTION, environ={},
                       uid=1000, gid=1000, container="railguard-drill-tasks-4321")
    assert plan.mode == "docker" and plan.container == "railguard-drill-tasks-4321"
    assert plan.argv == ["docker", "run", "--rm", "--name", "railguard-drill-tasks-4321",
                         "--label", "railguard.drill=tasks", "--network", "host",
                         "--volume", f"{COPY.parent}:/app/data", "--user", "1000:1000",
                         "--env", "PORT=4321", "--env", "HOST=127.0.0.1", "--env", "DB_PATH=/app/data/tasks.db",
                         "tasks-app:drill"]


@pytest.mark.parametrize(("drill", "where"), [
    (DrillSettings(command=["app", str(PRODUCTION)]), "command"),
    (DrillSettings(command=["app"], env={"DB": str(PRODUCTION)}), "env DB"),
    (DrillSettings(command=["app"], env={"DATA": "/srv/app/data/"}), "env DATA"),
    (DrillSettings(command=["app"], workdir="/srv/app/data"), "workdir"),
    (DrillSettings(command=["app", "--data=/srv/app/data"]), "command"),
])
def test_anything_naming_production_is_refused(drill, where):
    with pytest.raises(DrillTouchesProduction, match=f"drill {where} names the production"):
        plan_launch(drill, app_name="tasks", copy=COPY, port=1, production_db=PRODUCTION, environ={})


def test_a_sibling_directory_is_not_production():
    drill = DrillSettings(command=["app", "/srv/app/data2/x", "/srv/app/src"])
    plan_launch(drill, app_name="tasks", copy=COPY, port=1, production_db=PRODUCTION, environ={})


def test_no_command_and_no_image_is_not_configured():
    with pytest.raises(DrillNotConfigured, match="no drill command or image"):
        plan_launch(DrillSettings(), app_name="tasks", copy=COPY, port=1, production_db=PRODUCTION, environ={})


@pytest.mark.parametrize(("section", "message"), [
    ('command = ["a"]\nimage = "b"', "give command or image, not both"),
    ('command = ["a"]\nassertions = [{ sql = "SELECT 1" }]', "give exactly one of expect"),
    ('command = ["a"]\nassertions = [{ sql = "SELECT 1", expect = "> 0", max_age = "1h" }]',
     "give exactly one of expect"),
    ('command = ["a"]\nassertions = [{ sql = "SELECT 1", expect = "positive" }]', "operator"),
    ('command = ["a"]\nbackup = "oldest"', "apps.tasks.drill.backup"),
    ('command = ["a"]\nstart_timeout = "soon"', "duration"),
    ('command = ["a"]\ncomand = ["b"]', "apps.tasks.drill.comand: unknown key"),
])
def test_bad_drill_settings_name_the_key(tmp_path, section, message):
    config = tmp_path / "railguard.toml"
    config.write_text(f"[apps.tasks.drill]\n{section}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_a_health_wait_ended_by_a_poll_that_timed_out_still_reports_the_apps_last_answer():
    # The last poll gets only what is left of the wait; on a loaded machine it can time out, and
    # the drill's reason said "last answer: timed out" instead of the app's 503 and its cause.
    released = threading.Event()

    class AnswersOnceThenHangs(LocalServer):
        def respond(self, request):  # type: ignore[no-untyped-def]
            if len(self.requests) > 1:
                released.wait(30)
            return 503, "text/plain", b"migrations failed: schema version 9"

    server = AnswersOnceThenHangs()
    try:
        waited = wait_for_health(f"{server.base}/health", timeout=3.0, exit_code=lambda: None)
    finally:
        released.set()
        server.stop()
    assert not waited.ok and waited.attempts >= 2
    # The last poll gets what is left of the wait, so its timeout is whatever remained.
    assert re.fullmatch(r"HTTP 503 'migrations failed: schema version 9'; then timed out after [\d.]+s",
                        waited.last.describe()), waited.last.describe()
