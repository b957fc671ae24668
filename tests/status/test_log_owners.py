"""Each log is read by the module that writes it: the reader next to the writer agrees with it,
and ``railguard status`` and the metrics ask those owners instead of naming the files again."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import railguard.metrics.collect
import railguard.status
from railguard import logfmt
from railguard.backup.engine import take_backup
from railguard.backup.log import LOG_NAME as BACKUP_LOG
from railguard.backup.log import last_backup_attempt
from railguard.config import BackupSettings
from railguard.deploy.state import DeployState, last_deploy, state_path
from railguard.destinations.history import LastCopies, last_copies, last_copy_success, read_copy_log
from railguard.destinations.history import record as log_copy
from railguard.drill.log import drill_passed, last_drill_success, read_drill_log
from railguard.drill.runner import DrillReport, _record as record_drill
from railguard.logfmt import append_line

NOW = datetime(2026, 11, 27, 3, 30, tzinfo=timezone.utc)


def test_a_backup_and_a_prune_write_backup_log_and_its_reader_finds_the_last_backup(
        tmp_path: Path, tasks_db: Path) -> None:
    directory = tmp_path / "backups"
    settings = BackupSettings(directory=directory)
    take_backup(tasks_db, settings, now=NOW, tz="UTC")
    take_backup(tasks_db, settings, now=NOW + timedelta(days=1), tz="UTC")
    # A prune line after the backups, with the fields retention/prune.py writes.
    append_line(directory / BACKUP_LOG, {"time": NOW + timedelta(days=1, hours=1), "event": "prune",
                                         "backup": "tasks-20261127-0330", "result": "removed"})
    attempt = last_backup_attempt(directory)
    assert attempt is not None
    assert (attempt["result"], attempt["file"]) == ("ok", "tasks-20261128-0330.sqlite3.zst")


def test_the_drill_log_reader_reads_what_a_drill_records(tmp_path: Path) -> None:
    passed = DrillReport("tasks", "tasks-20261127-0330", "local", "command", NOW, result="passed")
    failed = DrillReport("tasks", "tasks-20261128-0330", "local", "command", NOW + timedelta(days=1),
                         reason="health 503")
    record_drill(tmp_path, passed)
    assert last_drill_success(tmp_path) == NOW
    record_drill(tmp_path, failed)
    lines = read_drill_log(tmp_path)
    assert [drill_passed(line) for line in lines] == [True, False]
    assert lines[-1]["error"] == "health 503"
    assert last_drill_success(tmp_path) == NOW


def test_a_drill_result_other_than_the_one_written_for_a_pass_is_not_a_pass(tmp_path: Path) -> None:
    """drill.log says ok for a passing drill; nothing else is read as one (status used to accept
    "passed" and "pass" too, words no railguard version writes)."""
    for word in ("passed", "pass"):
        append_line(tmp_path / "drill.log", {"time": NOW, "result": word})
    assert not any(drill_passed(line) for line in read_drill_log(tmp_path))
    assert last_drill_success(tmp_path) is None


def test_the_copy_log_reader_reads_what_a_copy_records(tmp_path: Path) -> None:
    log_copy(tmp_path, NOW, "offsite", "tasks-20261127-0330", "ok", None)
    log_copy(tmp_path, NOW + timedelta(hours=1), "offsite", "tasks-20261127-0430", "failed", "disk full")
    append_line(tmp_path / "destinations.log", {"time": NOW + timedelta(hours=2), "event": "prune",
                                                "destination": "offsite", "result": "ok"})
    lines = read_copy_log(tmp_path)
    assert [(line["backup"], line["result"]) for line in lines] == [("tasks-20261127-0330", "ok"),
                                                                    ("tasks-20261127-0430", "failed")]
    assert last_copy_success(lines) == NOW


def test_the_last_copies_are_those_of_the_whole_log_read_from_its_end_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A year of daily copies to offsite; nearby's last copy failed after an older success;
    # faraway never had a good one; a prune line is not a copy.
    for day in range(365):
        log_copy(tmp_path, NOW + timedelta(days=day), "offsite", f"tasks-{day}", "ok", None)
    log_copy(tmp_path, NOW, "nearby", "tasks-0", "ok", None)
    log_copy(tmp_path, NOW + timedelta(days=365), "nearby", "tasks-365", "failed", "disk full")
    log_copy(tmp_path, NOW + timedelta(days=365), "faraway", "tasks-365", "failed", "no route")
    append_line(tmp_path / "destinations.log", {"time": NOW + timedelta(days=366), "event": "prune",
                                                "destination": "offsite", "result": "ok"})
    lines = read_copy_log(tmp_path)
    for name in ("offsite", "nearby", "faraway", "unknown"):
        mine = [line for line in lines if line.get("destination") == name]
        assert last_copies(tmp_path, [name])[name] == LastCopies(mine[-1] if mine else None,
                                                                 last_copy_success(mine)), name
    parsed = []
    monkeypatch.setattr(logfmt, "parse_line", lambda line: parsed.append(line) or logfmt_parse(line))
    assert last_copies(tmp_path, ["offsite"])["offsite"].success_at == NOW + timedelta(days=364)
    # The prune line, faraway's and nearby's two, then offsite's newest copy: not the year before it.
    assert len(parsed) == 5


logfmt_parse = logfmt.parse_line


def _file_names_and_readers(module: object) -> tuple[set[str], set[str]]:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    names = {node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and node.value.endswith(".log") and " " not in node.value}  # a file name, not "see drill.log" text
    readers = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.name in {"read_lines", "LOG_NAME", "DRILL_LOG", "DESTINATIONS_LOG"}}
    return names, readers


def test_status_and_the_metrics_name_no_log_file_and_read_none_themselves() -> None:
    for module in (railguard.status, railguard.metrics.collect):
        assert _file_names_and_readers(module) == (set(), set()), module.__name__


def test_the_deploy_history_reader_returns_the_newest_deploy(tmp_path: Path) -> None:
    assert last_deploy(tmp_path, None, "tasks") is None
    state = DeployState(state_path(tmp_path, None))
    for ref, result in (("v1", "ok"), ("v2", "failed")):
        deploy_id = state.start(app="tasks", caprover_app="tasks", kind="deploy", ref=ref, git_hash=None, now=NOW)
        state.finish(deploy_id, result=result, now=NOW)
    newest = last_deploy(tmp_path, None, "tasks")
    assert newest is not None and (newest.ref, newest.result) == ("v2", "failed")
    assert last_deploy(tmp_path, None, "notes") is None
