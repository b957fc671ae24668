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
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from _common import Timings, tests_module

from railguard.drill import run_drill
from railguard.rehearsal.rehearse import rehearse

candidates = tests_module("rehearsal/candidates.py", "rehearsal_candidates")

#: Incompressible rows up to a size (tests/conftest.py), so that compression cannot hide it.
grow = tests_module("conftest.py", "railguard_tests_conftest").grow_with_random_rows


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
        drilled, rehearsed = Timings(), Timings()
        for _ in range(args.runs):
            drill = run_drill(settings, "tasks", app, now=datetime.now(timezone.utc), env=env)
            assert drill.passed, drill.reason
            drilled.add(drill)
            report = rehearse(settings, "tasks", app, tar=tar, commit=commit, backup=backup,
                              now=datetime.now(timezone.utc), env=env)
            assert report.passed, report.lines()
            rehearsed.add(report)
        assert backup.manifest is not None
        base = drilled.median
        print(f"database {backup.manifest.size_raw / 1e6:.0f} MB raw, {backup.manifest.size_stored / 1e6:.0f} MB "
              f"stored, {args.runs} runs, medians")
        print(f"railguard drill, end to end:     {base:.2f} s  = 1.00")
        print(f"rehearsal of {commit[:12]}:   {rehearsed.median:.2f} s  = "
              f"{rehearsed.median / base:.2f}  (target <= 1.20)")
        print("\n".join(rehearsed.step_lines()))


if __name__ == "__main__":
    main()
