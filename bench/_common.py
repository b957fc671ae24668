"""What the benchmarks share.

Not a benchmark (``make bench`` has no use for it): the test helpers and another benchmark's
setup loaded by path, a free port on 127.0.0.1 and the wait for a server started on it (the S3
server of bench/destinations.py and bench/generation_copies.py), and the timings of repeated
runs that each return a report with ``seconds`` and timed ``steps`` (a drill's or a
rehearsal's, :class:`railguard.drill.boot.BootReport`), summed up as medians.
"""

from __future__ import annotations

import importlib.util
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from railguard.drill.boot import BootReport

ROOT = Path(__file__).resolve().parents[1]
#: The example app a drill boots.
EXAMPLE_APP = ROOT / "examples" / "tasks-app" / "app.py"


def tests_module(relative: str, name: str) -> ModuleType:
    """A module of tests/ (``relative`` to it) loaded by path, as ``name``: a bench's own file
    name would shadow a tests directory of the same name (a namespace package loses to a module),
    and tests/ is no package to import from."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bench_module(name: str) -> ModuleType:
    """The benchmark ``bench/NAME.py`` loaded by path, as ``bench_NAME``, to share its setup."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    """Until something listens on 127.0.0.1:``port`` (RuntimeError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no server started on 127.0.0.1:{port}")


@dataclass
class Timings:
    """Each run's seconds and each of its steps', in the order the steps first ran."""

    runs: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)

    def add(self, report: BootReport) -> None:
        self.runs.append(report.seconds)
        for step in report.steps:
            self.steps.setdefault(step.name, []).append(step.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def step_lines(self, base: float | None = None) -> list[str]:
        """A line a step, its median (and its ratio to ``base`` seconds, when given)."""
        lines = []
        for name, values in self.steps.items():
            ratio = f"  = {statistics.median(values) / base:.2f}" if base is not None else ""
            lines.append(f"  {name:<11} {statistics.median(values):.2f} s{ratio}")
        return lines
