"""Benchmark: the webhook gate (`railguard gate serve`) as a real process on 127.0.0.1.

Run by hand (about a minute):

    .venv/bin/python bench/gate.py [--deliveries 1000] [--concurrency 50] [--size-mb 10] [--rounds 4]

Measures, in one run:
  (a) webhook handler latency: 50 concurrent clients send signed Forgejo push deliveries
      (each verified, parsed, deduped and queued in SQLite); p50/p99 against the target of
      100 ms, and against the floor of the same stack (uvicorn + Starlette answering 202 to
      the same POST without doing anything), measured the same way;
  (b) the gate's overhead from the webhook to CapRover's deploy call for a 10 MB repository,
      the test command's own time taken out, against the target of 2 s, and against the floor:
      `git clone --bare` of the repository plus `git archive` of the commit, timed by hand. The
      gate fills its mirror when it starts (that time is printed too), so a push fetches only
      what it adds.
Every figure is printed as a ratio against the target and the baseline of this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakes.caprover import FakeCapRover  # noqa: E402
from fakes.forgejo import push_payload, signed_headers  # noqa: E402

SECRET = "bench-webhook-secret"
APP_TOKEN = "bench-app-token"
TARGET_P99 = 0.100
TARGET_OVERHEAD = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class TimedCapRover(FakeCapRover):
    """The fake CapRover, noting the wall-clock time each deploy call arrives."""

    def __init__(self) -> None:
        super().__init__(password="unused")
        self.arrivals: list[tuple[float, str]] = []

    def handle(self, method, raw_path, headers, body):  # type: ignore[no-untyped-def]
        arrived = time.time()
        status, envelope = super().handle(method, raw_path, headers, body)
        if method == "POST" and "/appData/" in raw_path:
            self.arrivals.append((arrived, self.calls[-1].fields.get("gitHash", "")))
        return status, envelope


def make_repository(directory: Path, size_mb: int) -> tuple[Path, Path]:
    origin, work = directory / "origin.git", directory / "work"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], check=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(work)], check=True)
    for key, value in (("user.name", "Bench"), ("user.email", "bench@example.test"), ("commit.gpgsign", "false")):
        git(work, "config", key, value)
    git(work, "remote", "add", "origin", str(origin))
    (work / "Dockerfile").write_text("FROM scratch\n")
    (work / "run-tests.sh").write_text("#!/bin/sh\necho '12 pass'\n")
    assets = work / "assets"
    assets.mkdir()
    # Incompressible content, so git cannot make the 10 MB smaller than it is.
    for number in range(size_mb):
        (assets / f"blob-{number}.bin").write_bytes(os.urandom(1024 * 1024))
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", "a 10 MB tree")
    git(work, "push", "--quiet", "origin", "main")
    return origin, work


def write_config(directory: Path, port: int, captain: FakeCapRover, origin: Path) -> Path:
    path = directory / "railguard.toml"
    path.write_text(f"""state_dir = "{directory / 'state'}"

[apps.tasks]
database = "/dev/null"

[apps.tasks.deploy]
caprover_url = "{captain.url}"
test_command = ["sh", "run-tests.sh"]

[gate]
port = {port}

[gate.apps.tasks]
repository = "bench/tasks"
clone_url = "file://{origin}"
""")
    return path


def start_gate(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAILGUARD_GATE_SECRET": SECRET, "CAPROVER_APP_TOKEN": APP_TOKEN,
           "PYTHONPATH": str(ROOT / "src")}
    handle = open(log, "wb")
    process = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config), "gate", "serve"],
                               env=env, stdout=handle, stderr=handle)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    return process


def start_floor(port: int, log: Path) -> subprocess.Popen[bytes]:
    """uvicorn + Starlette answering 202 to the webhook POST, doing nothing else."""
    code = ("import uvicorn\nfrom starlette.applications import Starlette\n"
            "from starlette.responses import JSONResponse\nfrom starlette.routing import Route\n"
            "async def hook(request):\n    await request.body()\n"
            "    return JSONResponse({'ok': True}, status_code=202)\n"
            "app = Starlette(routes=[Route('/hooks/forgejo', hook, methods=['POST']),"
            " Route('/healthz', lambda r: JSONResponse({}), methods=['GET'])])\n"
            f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning', access_log=False)\n")
    handle = open(log, "wb")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=handle, stderr=handle)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    return process


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def deliveries(url: str, bodies: list[bytes], concurrency: int, *, distinct_ids: bool) -> list[float]:
    """Send every body signed, ``concurrency`` at a time over keep-alive connections; the seconds
    each answer took. Requests are signed and encoded before the clock starts, and the client is
    plain asyncio streams: on two shared cores a heavier client would measure itself."""
    host, _, rest = url.removeprefix("http://").partition(":")
    port, path = int(rest.split("/", 1)[0]), "/" + rest.split("/", 1)[1]
    requests: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        headers = signed_headers(body, SECRET, delivery=str(uuid.uuid4()) if distinct_ids else "same")
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        requests.put_nowait(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
                            f"{head}\r\n".encode() + body)
    latencies: list[float] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not requests.empty():
                request = requests.get_nowait()
                began = time.perf_counter()
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - began)
                if status_line.split()[1] not in (b"200", b"202"):
                    raise SystemExit(f"unexpected answer {status_line!r}")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def handler_buckets(gate_url: str) -> dict[float, float]:
    """Cumulative counts of the gate's webhook-handler histogram, by upper bound."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{gate_url.rsplit('/hooks', 1)[0]}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "railguard_gate_webhook_seconds_bucket":
                counts[float(sample.labels["le"])] = sample.value
    return counts


def wait_idle(gate_url: str) -> None:
    """Until the gate's start-up fetch is done (the mirror holds the branch)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{gate_url}/healthz", timeout=10) as response:
            if json.loads(response.read()).get("apps", {}).get("tasks", {}).get("ready"):
                return
        time.sleep(0.1)
    raise SystemExit("the gate did not fill its mirror")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def bench_latency(args: argparse.Namespace, gate_url: str, floor_url: str, origin: Path, head: str) -> None:
    # Pushes to the app's branch: each is verified, deduped and queued (the worker then tests
    # only the newest, so the queue does not grow into 1000 test runs).
    bodies = [json.dumps(push_payload(ref=args.ref, before="0" * 40, after=head,
                                      clone_url=f"file://{origin}")).encode() for _ in range(args.deliveries)]
    # Warm both servers up (connections, imports) before measuring.
    asyncio.run(deliveries(floor_url, bodies[:100], args.concurrency, distinct_ids=True))
    asyncio.run(deliveries(gate_url, bodies[:100], args.concurrency, distinct_ids=True))
    floor = asyncio.run(deliveries(floor_url, bodies, args.concurrency, distinct_ids=True))
    buckets_before = handler_buckets(gate_url)
    gate = asyncio.run(deliveries(gate_url, bodies, args.concurrency, distinct_ids=True))
    buckets_after = handler_buckets(gate_url)
    inside = {bound: buckets_after[bound] - buckets_before.get(bound, 0) for bound in buckets_after}
    print(f"\n(a) webhook handler, {args.deliveries} signed deliveries, {args.concurrency} at a time")
    print(f"    {'':24}{'p50':>9}{'p99':>9}{'max':>9}  p99/target  p99/floor")
    for name, values in (("floor (202, no work)", floor), ("railguard gate", gate)):
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"    {name:24}{p50 * 1000:8.1f}ms{p99 * 1000:7.1f}ms{max(values) * 1000:7.1f}ms"
              f"  {p99 / TARGET_P99:9.2f}x  {p99 / percentile(floor, 0.99):8.2f}x")
    # The handler's own time (verify, parse, decide, dedupe and queue in SQLite, lock waits
    # included), from the gate's railguard_gate_webhook_seconds histogram: without the time a
    # request waits for the server's event loop on this machine.
    total = inside[float("inf")]
    p50_bound = next(bound for bound in sorted(inside) if inside[bound] >= 0.5 * total)
    p99_bound = next(bound for bound in sorted(inside) if inside[bound] >= 0.99 * total)
    print(f"    handler's own time (gate histogram, {total:.0f} deliveries): p50 <= {p50_bound * 1000:g}ms, "
          f"p99 <= {p99_bound * 1000:g}ms  ({p99_bound / TARGET_P99:.2f}x target)")


def bench_overhead(gate_url: str, captain: TimedCapRover, work: Path, origin: Path, rounds: int,
                   size_mb: int) -> None:
    floors = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as scratch:
            began = time.perf_counter()
            subprocess.run(["git", "clone", "--quiet", "--bare", f"file://{origin}", f"{scratch}/m.git"], check=True)
            subprocess.run(["git", "archive", "--format=tar", "-o", f"{scratch}/t.tar", "main"], cwd=f"{scratch}/m.git",
                           check=True)
            floors.append(time.perf_counter() - began)
    floor = statistics.median(floors)
    results = []
    for number in range(rounds):
        (work / "CHANGELOG").write_text(f"round {number}\n")
        git(work, "add", "--all")
        git(work, "commit", "--quiet", "-m", f"round {number}")
        before = git(origin, "rev-parse", "main")
        git(work, "push", "--quiet", "origin", "main")
        sha = git(work, "rev-parse", "HEAD")
        body = json.dumps(push_payload(ref="refs/heads/main", before=before, after=sha,
                                       clone_url=f"file://{origin}")).encode()
        sent = time.time()
        request = urllib.request.Request(f"{gate_url}/hooks/forgejo", data=body, method="POST",
                                         headers=signed_headers(body, SECRET))
        with urllib.request.urlopen(request, timeout=10) as response:
            run_id = json.loads(response.read())["run"]
        deadline = time.monotonic() + 120
        while not any(commit == sha for _, commit in captain.arrivals):
            if time.monotonic() > deadline:
                raise SystemExit(f"no deploy call for {sha}")
            time.sleep(0.01)
        arrived = next(at for at, commit in captain.arrivals if commit == sha)
        with urllib.request.urlopen(f"{gate_url}/runs/{run_id}", timeout=10) as response:
            run = json.loads(response.read())
        tests = (datetime.fromisoformat(run["tests_finished_at"]) -
                 datetime.fromisoformat(run["tests_started_at"])).total_seconds()
        results.append((arrived - sent - tests, tests))
    print(f"\n(b) webhook to CapRover's deploy call, {size_mb} MB repository, the test command's time taken out")
    print(f"    floor: git clone --bare + git archive by hand: {floor:.3f}s (median of 3)")
    for number, (overhead, tests) in enumerate(results):
        kind = "first push after the start" if number == 0 else "later push"
        print(f"    round {number} ({kind}): overhead {overhead:.3f}s (tests took {tests:.3f}s)"
              f"  {overhead / TARGET_OVERHEAD:.2f}x target  {overhead / floor:.2f}x floor")
    median = statistics.median(o for o, _ in results)
    print(f"    median: {median:.3f}s  {median / TARGET_OVERHEAD:.2f}x target  {median / floor:.2f}x floor")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--size-mb", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--ref", default="refs/heads/main",
                        help="ref of the latency deliveries; refs/heads/other measures the ignore path (no queueing)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="railguard-bench-gate-"))
    captain = TimedCapRover().start()
    captain.add_app("tasks", app_token=APP_TOKEN)
    processes = []
    try:
        origin, work = make_repository(directory, args.size_mb)
        gate_port, floor_port = free_port(), free_port()
        config = write_config(directory, gate_port, captain, origin)
        started = time.perf_counter()
        processes.append(start_gate(config, gate_port, directory / "gate.log"))
        wait_idle(f"http://127.0.0.1:{gate_port}")
        startup = time.perf_counter() - started
        processes.append(start_floor(floor_port, directory / "floor.log"))
        print(f"railguard gate benchmark on {os.cpu_count()} cores, load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; scratch in {directory}")
        gate_url, floor_url = f"http://127.0.0.1:{gate_port}", f"http://127.0.0.1:{floor_port}"
        print(f"\nstart-up: the gate serves and has filled its mirror ({args.size_mb} MB fetched) after "
              f"{startup:.3f}s")
        bench_overhead(gate_url, captain, work, origin, args.rounds, args.size_mb)
        bench_latency(args, f"{gate_url}/hooks/forgejo", f"{floor_url}/hooks/forgejo", origin,
                      git(work, "rev-parse", "HEAD"))
        print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        for process in processes:
            stop(process)
        captain.stop()
        shutil.rmtree(directory, ignore_errors=True)
