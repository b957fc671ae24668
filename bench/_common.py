"""What the benchmarks that boot the example app share (bench/drill.py, bench/rehearsal.py).

Not a benchmark (``make bench`` has no use for it): the test helpers loaded by path, and the
timings of repeated runs that each return a report with ``seconds`` and timed ``steps`` (a
drill's or a rehearsal's, :class:`railguard.drill.boot.BootReport`), summed up as medians.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
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
