"""Benchmark: bytes sent to an S3 destination per extra page generation (issue 19, docs/pages.md).

Run by hand (a minute at the default size; needs about 3x the database's size free in bench/output/):

    .venv/bin/python bench/generation_copies.py [--size-gb 0.05] [--generations 5] [--churn 0.01]

On a database built like bench/backup.py's (tasks with indexes), against a local S3 server
(moto in server mode on 127.0.0.1, started as tests/destinations/conftest.py starts it): a first
generation and ``railguard replicate`` of it, then --generations generations each after --churn
of the rows changed, each replicated. Per extra generation, in one run:
  stored: the bytes that generation added to the local store (its new packs and its page list);
  sent: the bytes of the objects railguard uploaded (``DestinationRun.bytes``);
  bucket: how much the bucket grew (objects + the generation's document, as S3 lists them);
and the ratios sent/stored (the target: ~1, no re-upload), sent/whole-file backup and
bucket/whole-file backup (the same database as one zstd backup, taken once in the same run).
bucket - sent is the generation's document, a few KB (docs/pages.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
from _common import bench_module, free_port, wait_for_port  # noqa: E402

bench_backup = bench_module("backup")
bench_generations = bench_module("generations")

from railguard.backup import take_backup  # noqa: E402
from railguard.config import BackupSettings, Settings  # noqa: E402
from railguard.destinations.replicate import replicate  # noqa: E402
from railguard.pages.writer import take_generation  # noqa: E402

OUTPUT = HERE / "output" / "generation_copies"
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
BUCKET = "railguard-bench"


def bucket_bytes(client, bucket: str) -> int:  # type: ignore[no-untyped-def]
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        total += sum(item["Size"] for item in page.get("Contents", []))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=0.05)
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--churn", type=float, default=0.01, help="fraction of rows changed before each generation")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    OUTPUT.mkdir(parents=True)
    database = OUTPUT / "tasks.db"
    bench_backup.build_database(database, args.size_gb)
    for name, value in {"AWS_ACCESS_KEY_ID": "bench-key", "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ[name] = value
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        settings = Settings.model_validate({
            "timezone": "UTC", "state_dir": str(OUTPUT / "state"),
            "apps": {"tasks": {"database": str(database),
                               "backup": {"directory": str(OUTPUT / "backups"), "kind": "pages"},
                               "destinations": {"offsite": {
                                   "url": f"s3://{BUCKET}/tasks", "endpoint_url": endpoint, "region": "us-east-1",
                                   "addressing_style": "path"}}}}})
        app = settings.apps["tasks"]
        rng = random.Random(19)
        rows: list[tuple[int, int, int]] = []
        for index in range(args.generations + 1):
            if index:
                bench_generations.churn(database, args.churn, rng)
            now = T0 + timedelta(minutes=10 * index)
            stored = take_generation(database, app.backup, now=now, app="tasks").manifest.new_bytes
            before = bucket_bytes(client, BUCKET)
            [run] = replicate(settings, "tasks", app, now=now, notify=False)
            assert run.ok, run.summary()
            rows.append((stored, run.bytes, bucket_bytes(client, BUCKET) - before))
        whole = take_backup(database, BackupSettings(directory=OUTPUT / "whole"), now=T0).manifest.size_stored
    finally:
        server.stop()

    size = database.stat().st_size
    print(f"\n{size / 1e6:.0f} MB database, {args.generations} extra generations after {args.churn:.0%} churn each, "
          f"to moto S3 on 127.0.0.1; whole-file zstd backup {whole / 1e6:.2f} MB")
    print(f"{'generation':>10} {'stored':>12} {'sent':>12} {'bucket':>12} {'sent/stored':>12} {'sent/whole':>11} "
          f"{'bucket/whole':>12}")
    for index, (stored, sent, grew) in enumerate(rows):
        print(f"{'first' if index == 0 else index:>10} {stored:>12,} {sent:>12,} {grew:>12,} "
              f"{sent / stored if stored else float('nan'):>12.3f} {sent / whole:>11.3f} {grew / whole:>12.3f}")
    extra = rows[1:]
    if extra:
        stored = sum(row[0] for row in extra) / len(extra)
        sent = sum(row[1] for row in extra) / len(extra)
        grew = sum(row[2] for row in extra) / len(extra)
        print(f"{'mean extra':>10} {stored:>12,.0f} {sent:>12,.0f} {grew:>12,.0f} {sent / stored:>12.3f} "
              f"{sent / whole:>11.3f} {grew / whole:>12.3f}")
    shutil.rmtree(OUTPUT)


if __name__ == "__main__":
    main()
