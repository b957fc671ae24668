"""Same input, same decision as the real ``restic forget --dry-run`` (Debian's restic).

Each randomized timeline becomes a restic repository of one-file snapshots taken "at" the
timeline's times (``restic backup --time``, read in the zone given by TZ), then restic and
apply_policy decide on the same policies; the kept and removed sets and the rules that keep
each snapshot must be identical. Timelines are seeded, mix minutes-apart bursts with gaps of
weeks, cross New Year (ISO weeks that belong to the other year) and, in Europe/Madrid, the DST
changes; times that are ambiguous on the local clock are skipped because ``--time`` cannot say
which of the two is meant.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from retention.helpers import record_at

from railguard.retention import Policy, Within, apply_policy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (Debian package restic)"),
]

#: (seed, time zone, snapshots, snapshots dated in the future). A few dozen each keeps the whole
#: test under a minute: every restic command spends ~0.5 s deriving the repository key.
TIMELINES = [(11, "UTC", 22, 0), (23, "Europe/Madrid", 26, 0), (37, "Asia/Kolkata", 20, 2)]
POLICIES_PER_TIMELINE = 3


def random_timeline(rng: random.Random, tz: str, count: int, future: int, now: datetime) -> list[datetime]:
    """``count`` times in the past (before ``now``), then ``future`` times after it."""
    zone = ZoneInfo(tz)
    moment = datetime(2022, 1, 10, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(86400 * 60))
    times: list[datetime] = []
    while len(times) < count:
        local = moment.astimezone(zone)
        ambiguous = local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()
        if not ambiguous:
            times.append(moment)
        moment += rng.choice([
            timedelta(minutes=rng.randint(1, 59)),
            timedelta(hours=rng.randint(1, 30)),
            timedelta(days=rng.randint(1, 4), seconds=rng.randrange(86400)),
            timedelta(days=rng.randint(5, 40), seconds=rng.randrange(86400)),
            timedelta(days=rng.randint(20, 60)),
        ])
        if rng.random() < 0.1 and moment.month < 12:  # the days around New Year, where ISO weeks cross years
            moment = datetime(moment.year, 12, 27, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(86400 * 8))
    assert times[-1] < now - timedelta(days=30), "a timeline must end well before now"
    moment = now.replace(microsecond=0)
    for _ in range(future):
        moment += timedelta(days=rng.randint(1, 40), seconds=rng.randrange(86400))
        times.append(moment)
    return times


def random_policy(rng: random.Random) -> Policy:
    while True:
        counts = {name: (rng.randint(1, 8) if rng.random() < 0.4 else 0)
                  for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly")}
        within = None
        if rng.random() < 0.4:
            parts = {unit: rng.randint(1, 12) for unit in rng.sample(["years", "months", "days", "hours"],
                                                                       rng.randint(1, 3))}
            parts.pop("years", None) if rng.random() < 0.7 else None
            within = Within(**parts) if parts else Within(days=3)
        policy = Policy(**counts, within=within)
        if not policy.is_empty():
            return policy


class ResticRepository:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.file = root / "database.sqlite3"
        self.file.write_text("the same content in every snapshot")
        self.env = {**os.environ, "RESTIC_REPOSITORY": str(root / "repo"), "RESTIC_PASSWORD": "test-only",
                    "RESTIC_CACHE_DIR": str(root / "cache")}
        self.run("init")

    def run(self, *args: str, tz: str = "UTC") -> str:
        completed = subprocess.run(["restic", "--quiet", "--no-cache", *args], env={**self.env, "TZ": tz},
                                   capture_output=True, text=True, timeout=120, check=False)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    def backup(self, host: str, moment: datetime, tz: str) -> None:
        local = moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")
        self.run("backup", "--host", host, "--time", local, str(self.file), tz=tz)

    def forget_dry_run(self, host: str, policy: Policy, tz: str) -> tuple[set[datetime], set[datetime],
                                                                         dict[datetime, set[str]]]:
        groups = json.loads(self.run("forget", "--dry-run", "--json", "--host", host, *policy.flags(), tz=tz))
        assert len(groups) == 1, groups
        group = groups[0]
        keep = {datetime.fromisoformat(s["time"]) for s in group["keep"]}
        remove = {datetime.fromisoformat(s["time"]) for s in group["remove"] or []}
        rules = {datetime.fromisoformat(r["snapshot"]["time"]): {m.split()[0] for m in r["matches"]}
                 for r in group["reasons"]}
        return keep, remove, rules


def test_apply_policy_decides_exactly_like_restic_forget(tmp_path: Path) -> None:
    repository = ResticRepository(tmp_path)
    # restic reads its own clock (backups dated after it never anchor --keep-within), so the
    # policy is applied at the real now too; no timeline has a backup within days of it.
    now = datetime.now(timezone.utc)
    timelines = {f"timeline{seed}": (seed, tz, random_timeline(random.Random(seed), tz, count, future, now))
                 for seed, tz, count, future in TIMELINES}
    # restic allows concurrent backups into one repository; two at a time halves the key-derivation wait.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(repository.backup, host, moment, tz)
                for host, (_, tz, times) in timelines.items() for moment in times]
        for job in jobs:
            job.result()

    compared = 0
    for host, (seed, tz, times) in timelines.items():
        records = [record_at(moment, tz, seq=index + 1) for index, moment in enumerate(times)]
        rng = random.Random(seed * 1000)
        for _ in range(POLICIES_PER_TIMELINE):
            policy = random_policy(rng)
            restic_keep, restic_remove, restic_rules = repository.forget_dry_run(host, policy, tz)
            plan = apply_policy(records, policy, now=now, tz=tz)
            our_keep = {d.backup.created_at for d in plan.keep}
            our_remove = {d.backup.created_at for d in plan.remove}
            context = f"{host} ({tz}), {policy}"
            assert our_keep == restic_keep, context
            assert our_remove == restic_remove, context
            assert our_keep | our_remove == set(times) and not plan.leave, context
            our_rules = {d.backup.created_at: {reason.split()[0] for reason in d.reasons} for d in plan.keep}
            assert our_rules == restic_rules, context
            compared += 1
    assert compared == len(TIMELINES) * POLICIES_PER_TIMELINE
