"""Benchmark of ``railguard monitor``: 200 targets served on 127.0.0.1, interval 1 s.

Measures the monitor process alone (``os.wait4`` on its pid): peak RSS, CPU time per check,
and how long each round of 200 checks took against the 1 s interval. 20 of the targets answer
503, so DOWN alerts go out through apprise (to a local json:// receiver) and apprise's
plugins are loaded: the memory figure includes them. The baseline is the same monitor with a
single target, measured in the same run.

Run: .venv/bin/python bench/monitor.py [--targets 200] [--rounds 10]
Targets: peak RSS under 80 MB; every round's 200 checks finished within the 1 s interval.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RSS_TARGET_MB = 80.0
INTERVAL_S = 1.0

# The targets run in their own process (asyncio, one listening socket per target) so their
# CPU is not counted against the monitor's.
TARGETS_SERVER = textwrap.dedent("""
    import asyncio, sys
    OK = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok"
    DOWN = b"HTTP/1.1 503 Service Unavailable\\r\\nContent-Length: 4\\r\\nConnection: close\\r\\n\\r\\ndown"

    async def main(count, failing):
        async def serve(reader, writer, answer):
            await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(answer)
            await writer.drain()
            writer.close()
        ports = []
        for index in range(count):
            answer = DOWN if index < failing else OK
            server = await asyncio.start_server(lambda r, w, a=answer: serve(r, w, a), "127.0.0.1", 0, backlog=256)
            ports.append(server.sockets[0].getsockname()[1])
        print(" ".join(map(str, ports)), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
""")


class Receiver(BaseHTTPRequestHandler):
    count = 0

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def run_monitor(workdir: Path, ports: list[int], rounds: int, notify_url: str, concurrency: int) -> dict[str, float]:
    state = workdir / f"state-{len(ports)}"
    config = workdir / f"railguard-{len(ports)}.toml"
    lines = [f'state_dir = "{state}"', "[monitor]", f'interval = "{INTERVAL_S}s"', 'timeout = "1s"',
             f"concurrency = {concurrency}"]
    for index, port in enumerate(ports):
        lines += ["[[monitor.targets]]", f'name = "t{index:03d}"', f'url = "http://127.0.0.1:{port}/health"']
    config.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "RAILGUARD_NOTIFY_URLS": notify_url}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "railguard", "--config", str(config), "monitor",
                                "--rounds", str(rounds), "-v"], stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    log = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"the monitor exited {process.returncode}:\n{log}")
    checks_seconds = [float(m) for m in re.findall(r"event=round .*?checks_seconds=([0-9.]+)", log)]
    seconds = [float(m) for m in re.findall(r"event=round .*? seconds=([0-9.]+)", log)]
    checks = len(ports) * rounds
    cpu = usage.ru_utime + usage.ru_stime
    return {"rss_mb": usage.ru_maxrss / 1024, "cpu_s": cpu, "cpu_ms_per_check": 1000 * cpu / checks,
            "worst_round_s": max(seconds), "median_round_s": sorted(seconds)[len(seconds) // 2],
            "worst_checks_s": max(checks_seconds),
            "rounds": len(seconds), "wall_s": wall, "slow_rounds": log.count("event=slow_round")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--failing", type=int, default=20, help="targets answering 503 (DOWN alerts)")
    parser.add_argument("--concurrency", type=int, default=32, help="[monitor] concurrency (the default is 32)")
    args = parser.parse_args()

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    notify_url = f"json://127.0.0.1:{receiver.server_address[1]}/alerts"
    server = subprocess.Popen([sys.executable, "-c", TARGETS_SERVER, str(args.targets), str(args.failing)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ports = [int(port) for port in server.stdout.readline().split()]
        with tempfile.TemporaryDirectory(prefix="railguard-bench-") as scratch:
            work = Path(scratch)
            one = ports[args.failing:args.failing + 1]
            baseline = run_monitor(work, one, args.rounds, notify_url, args.concurrency)
            alerts_before = Receiver.count
            measured = run_monitor(work, ports, args.rounds, notify_url, args.concurrency)
            alerts = Receiver.count - alerts_before
    finally:
        server.terminate()
        server.wait()
        receiver.shutdown()

    print(f"railguard monitor: {args.targets} targets ({args.failing} answering 503), interval {INTERVAL_S:g}s, "
          f"{args.rounds} rounds, concurrency {args.concurrency}, {alerts} DOWN alerts delivered; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'':24}{'1 target (baseline)':>22}{f'{args.targets} targets':>16}{'ratio':>10}")
    for key, label in (("rss_mb", "peak RSS (MB)"), ("cpu_s", "CPU, whole run (s)"),
                       ("median_round_s", "median round (s)"), ("worst_checks_s", "worst round, checks (s)"),
                       ("worst_round_s", "worst round, +alerts (s)")):
        ratio = measured[key] / baseline[key] if baseline[key] else float("nan")
        print(f"{label:24}{baseline[key]:>22.3f}{measured[key]:>16.3f}{ratio:>9.2f}x")
    marginal = 1000 * (measured["cpu_s"] - baseline["cpu_s"]) / ((args.targets - 1) * args.rounds)
    print(f"CPU per check beyond the baseline (start-up, imports): {marginal:.3f} ms")
    print(f"peak RSS vs the {RSS_TARGET_MB:g} MB target: {measured['rss_mb'] / RSS_TARGET_MB:.2f} "
          f"({'within' if measured['rss_mb'] < RSS_TARGET_MB else 'OVER'})")
    print(f"slowest round's checks vs the {INTERVAL_S:g} s interval: {measured['worst_checks_s'] / INTERVAL_S:.2f} "
          f"({'within' if measured['worst_checks_s'] < INTERVAL_S else 'OVER'})")
    print(f"slowest round including its alerts vs the interval: {measured['worst_round_s'] / INTERVAL_S:.2f} "
          f"({'within' if measured['worst_round_s'] < INTERVAL_S else 'OVER'}; slow rounds logged: "
          f"{measured['slow_rounds']})")


if __name__ == "__main__":
    main()
