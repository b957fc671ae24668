"""Benchmark: the status page's server-side render time, 10 apps with a year of history each.

Run by hand (a minute or two, most of it building the history):

    .venv/bin/python bench/web.py [--apps 10] [--days 365] [--runs 15]

The site: per app, one real backup (``take_backup``) and then one backup a day for a year,
each a copy of that backup's file with its own manifest (no prune: the catalog reads every
one of them); a drill a month in ``drill.log``, a copy a day in ``destinations.log``, three
deploys a week in the deploy history; one monitor target per app with 48 h of raw checks at
60 s and 35 days of hourly rows (what the store keeps at most), and an outage a week.

Measured twice in one run: with every backup of the year kept (``prune = false``), then after
the default retention has pruned them (what a year of ``railguard backup`` leaves, while the
logs keep the whole year). Each time, the median and worst of ``--runs`` renders (the view built from disk,
then the HTML) of the overview and of one app's page, against the target of 200 ms and against
the baseline: ``collect_status`` over the same site, i.e. what ``railguard status --json`` reads
(the page reads that too, then the history); and the median CPU time of each, which moves less
than the wall clock with the load of a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from conftest import create_tasks_database  # noqa: E402

from railguard.backup.catalog import Owner, list_backups  # noqa: E402
from railguard.backup.engine import take_backup  # noqa: E402
from railguard.backup.naming import MANIFEST_SUFFIX  # noqa: E402
from railguard.config import Settings  # noqa: E402
from railguard.deploy.state import DeployState, state_path  # noqa: E402
from railguard.logfmt import append_line  # noqa: E402
from railguard.monitor.state import CheckResult, TargetState  # noqa: E402
from railguard.monitor.store import MonitorStore  # noqa: E402
from railguard.retention import Policy, prune_backups  # noqa: E402
from railguard.status import collect_status  # noqa: E402
from railguard.web.model import build_app, build_overview  # noqa: E402
from railguard.web.pages import Pages  # noqa: E402

TARGET_MS = 200.0
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def build(root: Path, apps: int, days: int) -> Settings:
    config: dict[str, object] = {"state_dir": str(root / "state"), "daemon": {"listen": ""}, "apps": {
        f"app{index:02d}": {"database": str(root / f"app{index:02d}.db"), "url": f"http://127.0.0.1:9/{index}",
                            "backup": {"directory": str(root / f"backups{index:02d}")},
                            "drill": {"command": ["true"]},
                            "destinations": {"offsite": {"url": f"file://{root / 'offsite'}"}}}
        for index in range(apps)}}
    settings = Settings.model_validate(config)
    history = DeployState(state_path(settings.state_dir, None))
    for name, app in settings.apps.items():
        create_tasks_database(app.database, rows=2000)
        directory = app.backup.directory
        first = take_backup(app.database, app.backup, now=NOW - timedelta(days=days), app=name)
        for age in range(days - 1, -1, -1):
            taken = (NOW - timedelta(days=age)).replace(hour=3, minute=30)
            stamp = taken.strftime("%Y%m%d-%H%M")
            backup = f"{app.database.stem}-{stamp}"
            data = directory / f"{backup}.sqlite3.zst"
            os.link(first.path, data)
            manifest = dataclasses.replace(first.manifest, name=backup, file=data.name,
                                           created_at=taken.isoformat())
            (directory / f"{backup}{MANIFEST_SUFFIX}").write_bytes(manifest.to_json())
            append_line(directory / "destinations.log", {"time": taken + timedelta(minutes=5), "event": "copy",
                                                         "destination": "offsite", "backup": backup, "result": "ok"})
            if taken.day == 1:
                append_line(directory / "drill.log", {"time": taken + timedelta(hours=1), "app": name,
                                                      "backup": backup, "result": "ok", "total_s": 4.2})
            if age % 7 in (1, 3, 5):
                deploy = history.start(app=name, caprover_app=name, kind="deploy", ref="main",
                                       git_hash=f"{age:040x}", now=taken + timedelta(hours=8))
                history.finish(deploy, result="ok", now=taken + timedelta(hours=8, minutes=2))
    store = MonitorStore.in_state_dir(settings.state_dir)
    try:
        state = TargetState()
        minute = timedelta(minutes=1)
        start = NOW - timedelta(days=35)
        for name in settings.apps:
            rows = []
            for step in range(int(timedelta(days=35) / minute)):
                at = start + step * minute
                ok = step % (7 * 24 * 60) >= 10  # ten minutes down a week
                rows.append((name, f"http://127.0.0.1:9/{name}", CheckResult(ok, at, "" if ok else "HTTP 503",
                                                                              0.02 if ok else None), state))
            store.record(rows)
        store.compact(NOW, timedelta(hours=48), timedelta(days=35))
    finally:
        store.close()
    return settings


def timed(work: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each run. On the shared machine the wall clock moves
    with the other engineers' load; the CPU time (this process's, one thread) much less."""
    work()  # warm: templates compiled, files in the page cache
    wall, cpu = [], []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append(1000 * (time.perf_counter() - began))
        cpu.append(1000 * (time.process_time() - began_cpu))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="railguard-bench-web-"))
    try:
        began = time.monotonic()
        settings = build(scratch, args.apps, args.days)
        built = time.monotonic() - began
        pages = Pages()
        first = next(iter(settings.apps))
        scenarios = {"every backup kept ([backup] prune = false)": measure(settings, pages, first, args.runs)}
        for name, app in settings.apps.items():  # what a year of pruning after each backup leaves
            prune_backups(app.backup.directory, Owner.of(settings, name, app), Policy.from_settings(app.retention),
                          now=NOW, tz=settings.timezone)
        kept = sum(len(list_backups(app.backup.directory)) for app in settings.apps.values())
        scenarios[f"the default retention (7 daily, 4 weekly: {kept} backups left)"] = measure(settings, pages, first,
                                                                                               args.runs)
        html = pages.overview(build_overview(settings, NOW))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"status page: {args.apps} apps x {args.days} days ({args.apps * args.days} backups, a copy a day, a drill "
          f"a month, 3 deploys a week; {args.apps} monitor targets with 48 h raw + 35 d hourly); site built in "
          f"{built:.0f} s; overview {len(html) // 1024} KiB; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; {args.runs} runs each")
    for scenario, results in scenarios.items():
        print(f"\n{scenario}")
        baseline = statistics.median(results["baseline: collect_status"][0])
        print(f"{'':28}{'median ms':>11}{'worst ms':>10}{'vs baseline':>13}{'vs 200 ms':>11}{'median CPU ms':>15}")
        for label, (times, cpu) in results.items():
            median = statistics.median(times)
            print(f"{label:28}{median:>11.1f}{max(times):>10.1f}{median / baseline:>12.2f}x"
                  f"{median / TARGET_MS:>10.2f}x{statistics.median(cpu):>15.1f}")


def measure(settings: Settings, pages: Pages, app: str, runs: int) -> dict[str, tuple[list[float], list[float]]]:
    return {
        "baseline: collect_status": timed(lambda: collect_status(settings, NOW), runs),
        "overview page": timed(lambda: pages.overview(build_overview(settings, NOW)), runs),
        "one app's page": timed(lambda: pages.app(build_app(settings, app, NOW)), runs),
    }


if __name__ == "__main__":
    main()
