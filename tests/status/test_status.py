"""``railguard status``: one screen, flags where the safety net has a hole, exit 7 then."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from railguard.deploy.state import DeployState
from railguard.logfmt import append_line
from railguard.monitor.state import CheckResult, TargetState
from railguard.monitor.store import MonitorStore


def config(tmp_path: Path, database: Path, extra: str = "") -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\ndatabase = "{database}"\n'
                    f'[apps.tasks.backup]\ndirectory = "{tmp_path / "backups"}"\n{extra}')
    return path


def rows(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {row["name"]: row for row in json.loads(result.stdout)["rows"]}


def test_a_fresh_verified_backup_is_all_good(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    result = run_cli("--config", cfg, "status")
    assert result.exit_code == 0, result.stdout
    assert "all good" in result.stdout
    document = run_cli("--config", cfg, "status", "--json")
    found = rows(document)
    assert found["backup"]["state"] == "ok" and found["verified"]["state"] == "ok"
    assert found["drill"]["state"] == "none" and found["deploy"]["state"] == "none"
    assert json.loads(document.stdout)["ok"] is True


def test_a_backup_older_than_period_plus_grace_is_flagged(run_cli, tmp_path: Path, tasks_db: Path, clock) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    clock(timedelta(hours=25))
    assert run_cli("--config", cfg, "status").exit_code == 0
    clock(timedelta(hours=27))
    result = run_cli("--config", cfg, "status", "--json")
    assert result.exit_code == 7
    backup = rows(result)["backup"]
    assert backup["flagged"] and "older than 1d 2h" in backup["detail"]
    assert json.loads(result.stdout)["flagged"] == 1


def test_no_backup_at_all_is_flagged(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--config", config(tmp_path, tasks_db), "status")
    assert result.exit_code == 7
    assert "FLAGGED" in result.stdout and "no verified backup in" in result.stdout and "1 flagged" in result.stdout


def test_a_failed_last_attempt_is_flagged(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    append_line(tmp_path / "backups" / "backup.log", {"time": datetime.now(timezone.utc), "result": "failed",
                                                      "error": "disk full"})
    result = run_cli("--config", cfg, "status", "--json")
    assert result.exit_code == 7
    assert rows(result)["last_attempt"]["detail"] == "backup failed: disk full"


def test_the_table_shows_a_detail_as_it_is_not_as_rich_markup(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    # A reason is text from the world (an OS error, a server's answer, a key's name): "[apps.x]"
    # is not a style to rich's markup, nor ":warning:" an emoji.
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    error = "set [apps.tasks] directory: :warning: [Errno 28] [bold]no space[/bold]"
    append_line(tmp_path / "backups" / "backup.log", {"time": datetime.now(timezone.utc), "result": "failed",
                                                      "error": error})
    result = run_cli("--config", cfg, "status")
    assert result.exit_code == 7
    assert f"backup failed: {error}" in result.stdout


def test_a_recent_passing_drill_is_ok_and_a_failed_one_is_flagged(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    drill_log = tmp_path / "backups" / "drill.log"
    append_line(drill_log, {"time": datetime.now(timezone.utc) - timedelta(days=1), "result": "ok"})
    passed = run_cli("--config", cfg, "status", "--json")
    assert passed.exit_code == 0 and rows(passed)["drill"]["state"] == "ok"
    append_line(drill_log, {"time": datetime.now(timezone.utc), "result": "failed", "error": "health 503"})
    failed = run_cli("--config", cfg, "status", "--json")
    assert failed.exit_code == 7
    assert rows(failed)["drill"]["detail"] == "last drill failed: health 503"


def test_a_passing_drill_goes_stale_after_35_days(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    append_line(tmp_path / "backups" / "drill.log",
                {"time": datetime.now(timezone.utc) - timedelta(days=36), "result": "ok"})
    result = run_cli("--config", cfg, "status", "--json")
    assert result.exit_code == 7
    assert rows(result)["drill"]["detail"].startswith("last passing drill 36d")


def test_the_last_deploy_and_its_smoke_result_are_shown(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    history = DeployState(tmp_path / "state" / "deploys.sqlite3")
    now = datetime.now(timezone.utc)
    deploy = history.start(app="tasks", caprover_app="tasks", kind="deploy", ref="main", git_hash="abc123def4567",
                           tag=None, image=None, now=now)
    history.finish(deploy, result="ok", now=now)
    from railguard.smoke.record import record_smoke
    record_smoke(tmp_path / "state", "tasks", ok=False, summary="smoke FAILED for tasks: migrations_ok is 0",
                 commit="abc123def4567", now=now)
    result = run_cli("--config", cfg, "status", "--json")
    found = rows(result)
    assert found["deploy"]["state"] == "ok" and found["deploy"]["detail"] == "deploy abc123def456: ok"
    assert found["smoke"]["flagged"] and "migrations_ok is 0" in found["smoke"]["detail"]
    assert result.exit_code == 7


def test_a_target_down_in_the_monitor_is_flagged(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    store = MonitorStore(tmp_path / "state" / "monitor.sqlite3")
    now = datetime.now(timezone.utc)
    down = TargetState(status="down", consecutive_failures=3, down_since=now - timedelta(minutes=5),
                       down_alerted=True, last_check_at=now, last_failure_at=now, last_failure_reason="HTTP 503")
    store.record([("tasks", "http://127.0.0.1:1/health", CheckResult(False, now, "HTTP 503"), down)])
    store.close()
    result = run_cli("--config", cfg, "status", "--json")
    assert result.exit_code == 7
    monitor_row = rows(result)["monitor:tasks"]
    assert monitor_row["flagged"] and monitor_row["detail"].endswith(": HTTP 503")


def test_an_unknown_app_is_an_error_not_an_empty_screen(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--config", config(tmp_path, tasks_db), "--app", "nope", "status")
    assert result.exit_code == 6
    assert "no app named 'nope'" in result.stderr


def test_each_destination_shows_its_last_copy_and_a_failed_copy_is_flagged(
        run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    nas = tmp_path / "nas"
    nas.mkdir()
    cfg = config(tmp_path, tasks_db, f'[apps.tasks.destinations.nas]\nurl = "file://{nas}"\n')
    backup = run_cli("--config", cfg, "backup")
    assert backup.exit_code == 0, backup.stderr
    copied = run_cli("--config", cfg, "status", "--json")
    row = rows(copied)["destination:nas"]
    assert row["state"] == "ok" and row["detail"].endswith(" copied")
    assert copied.exit_code == 0
    append_line(tmp_path / "backups" / "destinations.log",
                {"time": datetime.now(timezone.utc), "event": "copy", "destination": "nas", "backup": "x",
                 "result": "failed", "reason": "no space left on the NAS"})
    failed = run_cli("--config", cfg, "status", "--json")
    assert failed.exit_code == 7
    assert rows(failed)["destination:nas"]["detail"] == "last copy failed: no space left on the NAS"


def test_prune_lines_in_backup_log_are_not_backup_attempts(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    log = tmp_path / "backups" / "backup.log"
    append_line(log, {"time": datetime.now(timezone.utc), "result": "failed", "error": "disk full"})
    append_line(log, {"time": datetime.now(timezone.utc), "event": "prune", "backup": "old", "result": "removed"})
    result = run_cli("--config", cfg, "status", "--json")
    assert rows(result)["last_attempt"]["detail"] == "backup failed: disk full"


DRILL = '[apps.tasks.drill]\ncommand = ["python3", "-m", "http.server", "{port}"]\n'
DEPLOY = '[apps.tasks.deploy]\ncaprover_url = "http://127.0.0.1:9"\n'


def test_a_drill_that_never_ran_is_a_warning_when_the_app_has_one(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db, DRILL)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    result = run_cli("--config", cfg, "status")
    assert result.exit_code == 1, result.stdout
    assert "all good" not in result.stdout and result.stdout.splitlines()[-1] == "1 warning(s)"
    document = run_cli("--config", cfg, "status", "--json")
    drill = rows(document)["drill"]
    assert drill["state"] == "warning" and drill["detail"].startswith("no restore drill has ever run")
    assert json.loads(document.stdout)["ok"] is False and json.loads(document.stdout)["warnings"] == 1
    cfg.write_text(cfg.read_text().replace("[apps.tasks]", "[status]\nrequire_drill = false\n[apps.tasks]", 1))
    assert run_cli("--config", cfg, "status").exit_code == 0


def test_no_deploy_ever_is_a_warning_when_the_app_deploys(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db, DEPLOY)
    assert run_cli("--config", cfg, "backup").exit_code == 0
    result = run_cli("--config", cfg, "status", "--json")
    assert result.exit_code == 1
    assert rows(result)["deploy"] == {**rows(result)["deploy"], "state": "warning",
                                      "detail": "no deploy has ever been recorded"}
    cfg.write_text(cfg.read_text().replace("[apps.tasks]", "[status]\nrequire_deploy = false\n[apps.tasks]", 1))
    assert run_cli("--config", cfg, "status").exit_code == 0


def test_required_drill_and_deploy_are_warnings_without_their_sections(run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, tasks_db)
    cfg.write_text(cfg.read_text().replace("[apps.tasks]", "[status]\nrequire_drill = true\nrequire_deploy = true\n"
                                                          "[apps.tasks]", 1))
    assert run_cli("--config", cfg, "backup").exit_code == 0
    result = run_cli("--config", cfg, "status", "--json")
    assert result.exit_code == 1
    assert rows(result)["drill"]["state"] == "warning" and rows(result)["deploy"]["state"] == "warning"


def _copied_to_nas(run_cli, tmp_path: Path, tasks_db: Path) -> tuple[Path, Path, str]:  # type: ignore[no-untyped-def]
    """A backup copied by ``railguard backup`` to a real file:// destination, and that copy."""
    nas = tmp_path / "nas"
    nas.mkdir()
    cfg = config(tmp_path, tasks_db, f'[apps.tasks.destinations.nas]\nurl = "file://{nas}"\n')
    backup = run_cli("--config", cfg, "backup")
    assert backup.exit_code == 0, backup.stderr
    [copy] = nas.glob("*.sqlite3.zst")
    return cfg, copy, copy.name.removesuffix(".sqlite3.zst")


def _damage(run_cli, cfg: Path, copy: Path) -> None:  # type: ignore[no-untyped-def]
    """Flip a byte of the stored copy; ``backups verify --dest`` finds it and marks it damaged."""
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    assert run_cli("--config", cfg, "backups", "verify", "--dest", "nas").exit_code == 4
    assert (copy.parent / f"{copy.name.removesuffix('.sqlite3.zst')}.damaged.json").exists()


def test_a_copy_marked_damaged_at_a_destination_is_a_warning_naming_it_and_what_to_do(
        run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, copy, name = _copied_to_nas(run_cli, tmp_path, tasks_db)
    _damage(run_cli, cfg, copy)

    result = run_cli("--config", cfg, "status", "--json")

    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    assert (document["ok"], document["flagged"], document["warnings"]) == (False, 0, 1)
    found = rows(result)
    assert found["destination:nas"]["state"] == "ok"  # its last copy did succeed: the mark came later
    row = found[f"destination:nas:{name}"]
    assert row["state"] == "warning"
    assert row["detail"] == (f"copy of {name} at nas is marked damaged (copy of {name} does not match its "
                             "manifest); railguard replicate --dest nas replaces it from the local backup")
    marked = row["damaged_copy"]
    assert marked["found_at"] == row["at"] and row["at"] is not None
    assert {key: value for key, value in marked.items() if key != "found_at"} == {
        "destination": "nas", "backup": name, "reason": f"copy of {name} does not match its manifest",
        "replaceable": True}
    table = run_cli("--config", cfg, "status")
    assert table.exit_code == 1 and "WARNING" in table.stdout and "1 warning(s)" in table.stdout

    assert run_cli("--config", cfg, "replicate", "--dest", "nas").exit_code == 0
    again = run_cli("--config", cfg, "status", "--json")
    assert again.exit_code == 0, again.stdout
    assert not [key for key in rows(again) if key.startswith("destination:nas:")]


def test_a_damaged_copy_whose_local_backup_is_gone_says_replicate_cannot_replace_it(
        run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, copy, name = _copied_to_nas(run_cli, tmp_path, tasks_db)
    _damage(run_cli, cfg, copy)
    for path in (tmp_path / "backups").glob(f"{name}*"):
        path.unlink()

    row = rows(run_cli("--config", cfg, "status", "--json"))[f"destination:nas:{name}"]

    assert row["state"] == "warning" and row["damaged_copy"]["replaceable"] is False
    assert row["detail"].endswith("; the local backup is gone, so replicate cannot replace it; restore from "
                                  "another copy (railguard backups list --dest nas)")


def test_a_destination_status_cannot_read_is_a_warning_not_a_clean_bill(
        run_cli, tmp_path: Path, tasks_db: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, copy, _ = _copied_to_nas(run_cli, tmp_path, tasks_db)
    copy.parent.rename(tmp_path / "unmounted")

    result = run_cli("--config", cfg, "status", "--json")

    assert result.exit_code == 1, result.stdout
    row = rows(result)["destination:nas:unread"]
    assert row["state"] == "warning"
    assert row["detail"] == (f"cannot look for copies marked damaged there: destination nas: directory "
                             f"{tmp_path / 'nas'} does not exist (is the disk mounted?)")
