"""Benchmark: a ~1 GB backup copied to a local S3 server by railguard vs ``rclone copyto``.

Run by hand (about two minutes; needs ~3 GB free in the temp directory for the file and the
server's copies):

    .venv/bin/python bench/destinations.py [--size-mb 1024] [--encrypt]

Measures, in one run, against one S3 server (moto in server mode, its own process on 127.0.0.1):
  (a) baseline: ``rclone copyto FILE s3:...`` with the same part size and parallelism; upload only
  (b) railguard ``Destination.put_backup``: streamed multipart upload, then the object read back
      and its size and sha256 compared, then the manifest uploaded and read back
  (c) with --encrypt also: the same with age encryption (encrypt to a temp file, then (b))
Each copy runs in its own child process; peak memory is that process's maximum RSS (wait4).
Targets (issue 5): (b) peak memory under 150 MB; (b) throughput at least 0.7x of (a).
The backup file is random data (it only needs the size and a manifest) and is deleted at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import free_port, wait_for_port

KEY_ID = "bench-key"
SECRET = "bench-secret-key"
BUCKET = "railguard-bench"
PART = "8M"  # same as railguard's s3.PART_SIZE, so both send the same parts
PARALLEL = "4"  # same as railguard's s3.CONCURRENCY


def make_backup(directory: Path, size_mb: int) -> tuple[Path, Path]:
    """A file the size of a compressed backup, plus its manifest. Random blocks (incompressible,
    like zstd output), written quickly by varying one 16 MiB random block."""
    from railguard.backup.manifest import Manifest

    name = "tasks-20261127-0300"
    data = directory / f"{name}.sqlite3.zst"
    block = bytearray(os.urandom(16 << 20))
    digest = hashlib.sha256()
    with data.open("wb") as out:
        for index in range(size_mb // 16):
            block[:8] = index.to_bytes(8, "little")
            digest.update(block)
            out.write(block)
    size = data.stat().st_size
    manifest = Manifest(name=name, file=data.name, source="/app/data/tasks.db", created_at="2026-11-27T03:00:00+00:00",
                        sqlite_version="3.40.1", page_size=4096, page_count=size // 4096, journal_mode="wal",
                        size_raw=size, size_stored=size, sha256=digest.hexdigest(), raw_sha256=digest.hexdigest(),
                        method="backup-api", compression="zstd", level=3, check="integrity", check_result="ok",
                        verified=True, foreign_key_problems=0)
    manifest_path = directory / f"{name}.manifest.json"
    manifest_path.write_bytes(manifest.to_json())
    return data, manifest_path


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one child process."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    out, err = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


def child(endpoint: str, data: str, manifest: str, recipient: str | None) -> None:
    """Runs in its own process: one railguard put_backup, timed."""
    from railguard.backup.manifest import Manifest
    from railguard.config import DestinationSettings
    from railguard.destinations import Destination

    settings = DestinationSettings(url=f"s3://{BUCKET}/railguard{'-age' if recipient else ''}", endpoint_url=endpoint,
                                   region="us-east-1", addressing_style="path",
                                   age_recipients=[recipient] if recipient else [])
    started = time.monotonic()
    copy = Destination("bench", settings).put_backup(Path(data), Manifest.read(Path(manifest)),
                                                     scratch=Path(data).parent)
    print(json.dumps({"seconds": time.monotonic() - started, "size": copy.size, "good": copy.is_good}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--encrypt", action="store_true", help="also measure an age-encrypted copy")
    parser.add_argument("--child", nargs=4, metavar=("ENDPOINT", "DATA", "MANIFEST", "RECIPIENT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        endpoint, data, manifest, recipient = args.child
        child(endpoint, data, manifest, recipient if recipient != "-" else None)
        return
    if shutil.which("rclone") is None:
        sys.exit("rclone is not installed: apt-get install rclone")

    work = Path(tempfile.mkdtemp(prefix="railguard-bench-dest-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key not in ("AWS_PROFILE", "AWS_CA_BUNDLE")}
    env.update(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
               MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=str(8 << 20))
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    try:
        wait_for_port(port)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                     aws_secret_access_key=SECRET).create_bucket(Bucket=BUCKET)
        print(f"writing a {args.size_mb} MiB backup file in {work} ...", flush=True)
        data, manifest = make_backup(work, args.size_mb)
        size_mb = data.stat().st_size / 1e6

        # rclone reads its remote from the environment: no config file, same credentials.
        rclone_env = {**env, "RCLONE_CONFIG": str(work / "rclone.conf"), "RCLONE_CONFIG_BENCH_TYPE": "s3",
                      "RCLONE_CONFIG_BENCH_PROVIDER": "Other", "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
                      "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY_ID, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
                      "RCLONE_CONFIG_BENCH_REGION": "us-east-1", "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true"}
        (work / "rclone.conf").touch()
        print("rclone copyto ...", flush=True)
        rclone_s, rclone_mb, _ = run_measured(
            ["rclone", "copyto", str(data), f"bench:{BUCKET}/rclone/{data.name}", "--s3-chunk-size", PART,
             "--s3-upload-concurrency", PARALLEL, "--s3-upload-cutoff", PART], rclone_env)

        print("railguard put_backup (upload + read back + manifest) ...", flush=True)
        ours_s, ours_mb, out = run_measured([sys.executable, __file__, "--child", endpoint, str(data), str(manifest),
                                             "-"], env)
        assert json.loads(out)["good"], out

        rows = [("rclone copyto (upload only)", rclone_s, rclone_mb),
                ("railguard put_backup (upload + verify)", ours_s, ours_mb)]
        if args.encrypt:
            from railguard.destinations.encryption import generate_identity

            _, recipient = generate_identity()
            print("railguard put_backup with age encryption ...", flush=True)
            enc_s, enc_mb, _ = run_measured([sys.executable, __file__, "--child", endpoint, str(data), str(manifest),
                                             recipient], env)
            rows.append(("railguard put_backup, age-encrypted", enc_s, enc_mb))

        print(f"\n{size_mb:.0f} MB backup to moto S3 on 127.0.0.1 ({os.cpu_count()} cores), "
              f"parts {PART}B x {PARALLEL} in parallel")
        print(f"{'':42} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} {'throughput vs rclone':>21}")
        for label, seconds, peak in rows:
            print(f"{label:42} {seconds:8.1f} {size_mb / seconds:7.1f} {peak:12.0f} {rclone_s / seconds:20.2f}x")
        print(f"\ntargets: peak memory < 150 MB: {'met' if ours_mb < 150 else 'MISSED'} ({ours_mb:.0f} MB); "
              f"throughput >= 0.7x rclone: {'met' if rclone_s / ours_s >= 0.7 else 'MISSED'} "
              f"({rclone_s / ours_s:.2f}x)")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
