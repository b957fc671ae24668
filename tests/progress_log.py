"""A recording :data:`railguard.progress.Progress` callback, and the protocol's rules checked on it.

The rules (railguard/progress.py): a stage starts at ``(stage, 0, total)``, its done values
never decrease, and its last report is ``(stage, total, total)`` with the real total; a total of
0 (nothing measures the stage while it runs) may only become the real total at that last report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class StageRun:
    stage: str
    reports: list[tuple[int, int]] = field(default_factory=list)  # (done, total)

    @property
    def total(self) -> int:
        return self.reports[-1][1]


class ProgressLog:
    """Call it as a progress callback; read back one :class:`StageRun` per stage run, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self.calls.append((stage, done, total))

    def runs(self) -> list[StageRun]:
        """Consecutive reports of one stage form one run; a report of done 0 after others starts a new one."""
        runs: list[StageRun] = []
        for stage, done, total in self.calls:
            if not runs or runs[-1].stage != stage or (done == 0 and runs[-1].reports[-1][0] > 0):
                runs.append(StageRun(stage))
            runs[-1].reports.append((done, total))
        return runs

    def stages(self) -> list[str]:
        return [run.stage for run in self.runs()]

    def checked(self) -> dict[str, list[int]]:
        """Every run follows the rules; returns each stage's final totals, in order."""
        totals: dict[str, list[int]] = {}
        for run in self.runs():
            dones = [done for done, _ in run.reports]
            assert dones[0] == 0, f"{run.stage} did not start at 0: {run.reports[:3]}"
            assert dones == sorted(dones), f"{run.stage} went backwards: {run.reports}"
            first_total = run.reports[0][1]
            assert all(total == first_total for _, total in run.reports[:-1]), \
                f"{run.stage} changed its total while running: {run.reports}"
            assert first_total in (0, run.total), f"{run.stage} ended at another total: {run.reports}"
            assert run.total > 0 and run.reports[-1] == (run.total, run.total), \
                f"{run.stage} did not end at its total: {run.reports[-3:]}"
            assert len(run.reports) >= 2, f"{run.stage} reported only once: {run.reports}"
            totals.setdefault(run.stage, []).append(run.total)
        return totals
