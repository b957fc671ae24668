"""The rehearsal of a candidate commit (railguard.rehearsal.rehearse) with the example app as a
real process on 127.0.0.1, its commits in a real git repository, real backups of a real database."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from drill.sites import process_gone, snapshot
from rehearsal.candidates import (
    FAILS_ON_EXISTING_ROWS,
    EXAMPLE,
    GOOD_MIGRATION,
    AppRepository,
    app_settings,
    make_production_database,
    settings_for,
    take_verified_backup,
)

from railguard.backup.catalog import BackupRecord
from railguard.deploy.isolation import bwrap_problem, resolve_isolation
from railguard.rehearsal.rehearse import SANDBOXED, find_failed_migration, rehearse


def _bwrap_skip_reason() -> str | None:
    executable = shutil.which("bwrap")
    return "bwrap is not installed (.ci/run installs bubblewrap)" if executable is None else bwrap_problem(executable)


@pytest.fixture
def repository(tmp_path: Path) -> AppRepository:
    return AppRepository.create(tmp_path / "repo")


@pytest.fixture
def production(tmp_path: Path) -> Path:
    return make_production_database(tmp_path / "prod" / "data" / "tasks.db", rows=40)


def run(tmp_path: Path, production: Path, repository: AppRepository, commit: str, *,  # type: ignore[no-untyped-def]
        backup: BackupRecord | None = None, **options: object):
    """Rehearse ``commit`` on ``backup`` (default: a backup of ``production`` taken now)."""
    app = app_settings(tmp_path, production, **options)  # type: ignore[arg-type]
    backup = backup or take_verified_backup(production, app.backup.directory)
    lines: list[str] = []
    report = rehearse(settings_for(app), "tasks", app, tar=repository.archive(commit), commit=commit, backup=backup,
                      now=datetime.now(timezone.utc), on_line=lines.append)
    return report, lines


def test_a_migration_that_fails_on_existing_rows_fails_the_rehearsal_and_names_the_migration(
        tmp_path, production, repository):
    commit = repository.add_migration(FAILS_ON_EXISTING_ROWS)
    backup = take_verified_backup(production, tmp_path / "backups")
    before = snapshot(production.parent)
    report, lines = run(tmp_path, production, repository, commit, backup=backup, timeout="5s")
    assert not report.passed
    assert report.failed_step == "health"
    assert report.failed_migration is not None
    assert (report.failed_migration.id, report.failed_migration.name) == ("3", "add task priority")
    assert "Cannot add a NOT NULL column" in report.failed_migration.error
    assert report.summary() == (f"rehearsal of {commit[:12]} on {report.backup} failed at health: "
                                f"{report.failed_migration.describe()}")
    assert any("migration 3 (add task priority) failed" in line for line in report.output_tail)
    # The failed migration rolled back: the copy's schema and rows are as they were.
    assert report.change is not None and not report.change.schema_changed
    assert any(line.startswith("rehearsal FAILED health: /health did not answer 200") for line in lines)
    assert snapshot(production.parent) == before, "the production data directory changed"
    assert process_gone(report.app_pid)
    assert list((tmp_path / "scratch").iterdir()) == [], "the rehearsal's workspace was left behind"


def test_the_same_migration_passes_on_an_empty_database(tmp_path, repository):
    """The trap the rehearsal exists for: the developer's empty database says the migration works."""
    empty = make_production_database(tmp_path / "dev" / "data" / "tasks.db", rows=0)
    commit = repository.add_migration(FAILS_ON_EXISTING_ROWS)
    report, _ = run(tmp_path, empty, repository, commit, count_assertion=False)
    assert report.passed, report.lines()
    assert report.change is not None and report.change.schema_changed


def test_a_good_migration_passes_and_reports_what_it_changed(tmp_path, production, repository):
    commit = repository.add_migration(GOOD_MIGRATION)
    backup = take_verified_backup(production, tmp_path / "backups")
    before = snapshot(production.parent)
    report, lines = run(tmp_path, production, repository, commit, backup=backup)
    assert report.passed, report.lines()
    assert [step.name for step in report.steps] == ["tree", "copy", "start", "health", "metrics", "assertions",
                                                    "stop"]
    assert report.change is not None and report.change.schema_changed
    shape = report.as_dict()["shape"]
    assert "priority" in str(shape) and "tasks_priority" in str(shape)
    assert report.summary().startswith(f"rehearsal of {commit[:12]} on {report.backup} passed (schema changed")
    assert any("priority" in line for line in report.lines())
    assert any("priority" in line for line in lines), "the run log did not get the schema change"
    assert snapshot(production.parent) == before
    assert list((tmp_path / "scratch").iterdir()) == []


def test_the_rehearsal_boots_the_candidate_not_the_installed_code(tmp_path, production, repository):
    """A commit whose app cannot start at all fails: the code run is the commit's tree."""
    commit = repository.commit("broken start", {"app.py": "import sys\nprint('boom from the candidate', "
                                                          "file=sys.stderr)\nsys.exit(3)\n"})
    report, _ = run(tmp_path, production, repository, commit, timeout="20s")
    assert not report.passed and report.failed_step == "health"
    assert "exited with code 3" in (report.reason or "")
    assert "boom from the candidate" in report.output_tail
    assert report.failed_migration is None


def test_a_commit_whose_app_is_not_the_one_answering_fails_on_app_started_at(tmp_path, production, repository):
    """metrics: app_started_at before the rehearsal started the app means another process answers."""
    source = (repository.path / "app.py").read_text()
    old = "self.started_at_ms = "
    assert old in source
    commit = repository.commit("a stale clock", {"app.py": source.replace(old, "self.started_at_ms = 1000 or ", 1)})
    report, _ = run(tmp_path, production, repository, commit)
    assert not report.passed and report.failed_step == "metrics"
    assert "app_started_at" in (report.reason or "")


@pytest.mark.parametrize(("lines", "expected"), [
    (["tasks-app: migrations failed: migration 3 (add priority) failed: NOT NULL constraint failed"],
     ("3", "add priority", "NOT NULL constraint failed")),
    (["Error: migration 0003_add_priority failed: duplicate column name: priority"],
     ("0003_add_priority", None, "duplicate column name: priority")),
    (["migration 2 (a) failed: first", "retrying", "migration 3 (b) failed: last one wins"], ("3", "b", "last one wins")),
    (["tasks-app: migrations failed: database has schema version 4"], None),
    (["applied migration 3 (add priority)"], None),
])
def test_the_failed_migration_line_is_read_as_documented(lines, expected):
    found = find_failed_migration(lines)
    assert (None if found is None else (found.id, found.name, found.error)) == expected


def test_a_command_that_runs_the_installed_app_instead_of_the_commit_is_warned_about(tmp_path, production,
                                                                                      repository):
    installed = EXAMPLE / "app.py"
    commit = repository.add_migration(GOOD_MIGRATION)
    report, _ = run(tmp_path, production, repository, commit, command=[sys.executable, str(installed)])
    assert report.passed, report.lines()
    assert report.warnings == [
        f"the command runs {installed}, outside the candidate's tree: this rehearsed that file, not the commit's "
        "code (name it with {tree} in [apps.tasks.rehearsal] command)"]
    # Without the migration: the installed app never added the column.
    assert report.change is not None and not report.change.schema_changed


def test_the_tree_placeholder_names_the_candidates_tree(tmp_path, production, repository):
    commit = repository.add_migration(GOOD_MIGRATION)
    report, _ = run(tmp_path, production, repository, commit, command=[sys.executable, "{tree}/app.py"])
    assert report.passed, report.lines()
    assert report.warnings == []
    assert report.change is not None and report.change.schema_changed


#: What a candidate leaves in the copy's place, given where another database (tasks.db) lies.
SWAPS = {
    "the copy": lambda elsewhere: (f"import os\nos.unlink(os.environ['DB_PATH'])\n"
                                   f"os.symlink({str(elsewhere / 'tasks.db')!r}, os.environ['DB_PATH'])\n"),
    # lstat of the copy follows a link in its directory's place
    "its directory": lambda elsewhere: ("import os, shutil\ndata = os.path.dirname(os.environ['DB_PATH'])\n"
                                        f"shutil.rmtree(data)\nos.symlink({str(elsewhere)!r}, data)\n"),
}


@pytest.mark.parametrize("swapped", sorted(SWAPS))
def test_a_candidate_that_swaps_the_copy_for_a_link_gets_no_shape_read_through_it(tmp_path, production, repository,
                                                                                   swapped):
    """A confined app may write only its tree and the copy's directory, but railguard reads the
    copy back with its own rights: a link left in the copy's place, or in its directory's, must
    not be followed (it would put another database's tables and row counts into the report)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with contextlib.closing(sqlite3.connect(elsewhere / "tasks.db")) as database:
        database.execute("CREATE TABLE gate_private_table (value TEXT)")
    commit = repository.commit(f"swap {swapped}", {"app.py": SWAPS[swapped](elsewhere) + "raise SystemExit(3)\n"})
    report, _ = run(tmp_path, production, repository, commit, timeout="5s")
    assert not report.passed and report.failed_step == "health"
    assert report.change is None
    assert "the app replaced the copy tasks.db with something that is not a file: no shape after the rehearsal" \
        in report.warnings
    assert "gate_private_table" not in json.dumps(report.as_dict())


def test_a_sandboxed_candidate_cannot_swap_its_output_file_for_a_link_to_a_secret(tmp_path, production, repository):
    """railguard reads the app's output back (the tail of a failed rehearsal) with its own rights:
    the file must be out of the confined app's reach, or a link in its place would copy any
    file railguard can read into the report."""
    if reason := _bwrap_skip_reason():
        print(f"skipped: {reason}")
        pytest.skip(reason)
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "token").write_text("rehearsal-s3cret-never-shown\n")
    isolation = resolve_isolation("bwrap", private=[secrets / "token"],
                                  read_only=sorted({Path(sys.prefix), Path(sys.base_prefix)}))
    swap = ("import glob, os\n"
            "for name in ['../app-output.log', '../../app-output.log', *glob.glob('/tmp/*/app-output.log')]:\n"
            "    try:\n"
            "        os.unlink(name)\n"
            f"        os.symlink({str(secrets / 'token')!r}, name)\n"
            "        print('swapped', name, flush=True)\n"
            "    except OSError as exc:\n"
            "        print('cannot swap', name, exc.strerror, flush=True)\n"
            "raise SystemExit(3)\n")
    commit = repository.commit("swap the output", {"app.py": swap})
    app = app_settings(tmp_path, production, timeout="5s")
    report = rehearse(settings_for(app), "tasks", app, tar=repository.archive(commit), commit=commit,
                      backup=take_verified_backup(production, app.backup.directory), now=datetime.now(timezone.utc),
                      isolation=isolation)
    assert not report.passed and report.failed_step == "health"
    assert report.sandbox == SANDBOXED
    assert any(line.startswith("cannot swap ../../app-output.log") for line in report.output_tail), report.output_tail
    assert not any(line.startswith("swapped") for line in report.output_tail), report.output_tail
    assert "rehearsal-s3cret-never-shown" not in json.dumps(report.as_dict())
