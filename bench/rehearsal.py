"""What the deploy rehearsal costs, as a ratio to the restore drill's own time on the same database.

Both boot the example app on a verified copy of the same backup and run the same checks and SQL
assertion. The drill: ``run_drill`` end to end (verify with integrity_check, boot, drill.log).
The rehearsal: ``rehearse`` end to end on a candidate commit of the example app that adds a
migration (extract the commit's tar, verify with quick_check, the shape before, boot and
migrate, the shape after). Target: rehearsal <= 1.2x the drill (docs/deploy.md).

The database: the example app's tasks plus incompressible blobs up to ``--size-mb`` (default
1024, the issue's 1 GB), so that the copy's cost is the database's size and compression cannot
hide it.

    .venv/bin/python bench/rehearsal.py [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sqlite3
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from railguard.drill import run_drill
from railguard.rehearsal.rehearse import rehearse


def _candidates():  # type: ignore[no-untyped-def]
    """tests/rehearsal/candidates.py, by path: this file's own name would shadow the tests'
    ``rehearsal`` directory (a namespace package loses to a module of the same name)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "rehearsal" / "candidates.py"
    spec = importlib.util.spec_from_file_location("rehearsal_candidates", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


candidates = _candidates()

BLOB = 64 * 1024


def grow(database: Path, megabytes: int, *, seed: int = 1) -> None:
    """Incompressible rows up to ``megabytes`` (the app's tasks table is left as the app made it)."""
    rng = random.Random(seed)
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE IF NOT EXISTS attachments (id INTEGER PRIMARY KEY, data BLOB)")
    for _ in range(megabytes * (1024 * 1024 // BLOB)):
        connection.execute("INSERT INTO attachments(data) VALUES (?)", (rng.randbytes(BLOB),))
    connection.commit()
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="railguard-bench-rehearsal-") as work:
        root = Path(work)
        database = candidates.make_production_database(root / "prod" / "data" / "tasks.db", rows=10_000)
        grow(database, args.size_mb)
        # The drill boots the installed app; the rehearsal the candidate's, from its tree.
        app = candidates.app_settings(root, database, timeout="120s", command=[sys.executable, "{tree}/app.py"])
        app.drill.command = [sys.executable, str(candidates.EXAMPLE / "app.py")]
        settings = candidates.settings_for(app)
        backup = candidates.take_verified_backup(database, app.backup.directory)
        repository = candidates.AppRepository.create(root / "repo")
        commit = repository.add_migration(candidates.GOOD_MIGRATION)
        tar = repository.archive(commit)
        env = {"PATH": os.environ["PATH"]}
        drilled: list[float] = []
        rehearsed: list[float] = []
        steps: dict[str, list[float]] = {}
        for _ in range(args.runs):
            drill = run_drill(settings, "tasks", app, now=datetime.now(timezone.utc), env=env)
            assert drill.passed, drill.reason
            drilled.append(drill.seconds)
            report = rehearse(settings, "tasks", app, tar=tar, commit=commit, backup=backup,
                              now=datetime.now(timezone.utc), env=env)
            assert report.passed, report.lines()
            rehearsed.append(report.seconds)
            for step in report.steps:
                steps.setdefault(step.name, []).append(step.seconds)
        assert backup.manifest is not None
        base = statistics.median(drilled)
        print(f"database {backup.manifest.size_raw / 1e6:.0f} MB raw, {backup.manifest.size_stored / 1e6:.0f} MB "
              f"stored, {args.runs} runs, medians")
        print(f"railguard drill, end to end:     {base:.2f} s  = 1.00")
        print(f"rehearsal of {commit[:12]}:   {statistics.median(rehearsed):.2f} s  = "
              f"{statistics.median(rehearsed) / base:.2f}  (target <= 1.20)")
        for name, values in steps.items():
            print(f"  {name:<11} {statistics.median(values):.2f} s")


if __name__ == "__main__":
    main()
