"""What the pre-receive hook adds to a push: the same pushes with and without it, same run.

    .venv/bin/python bench/hook.py [--runs 10]

Makes two bare repositories (one plain, one with railguard's hook, test command ``true``)
and a clone with both as remotes, then pushes ``--runs`` one-commit pushes to each target,
interleaved round by round so that load on a shared machine hits all alike:

* the plain repository (the baseline);
* the hooked repository, an unprotected branch (railguard starts, reads the configuration,
  lets the ref pass);
* the hooked repository, ``main`` (plus ``git archive`` into a fresh directory, the test
  command, clean-up). With ``true`` as the test command this is railguard's own cost.

Prints the median push time of each and its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="railguard-bench-hook-") as scratch:
        root = Path(scratch)
        bare, work = root / "app.git", root / "work"
        git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        git(root, "init", "--quiet", "--initial-branch=main", str(work))
        for key, value in (("user.name", "Bench"), ("user.email", "bench@example.test")):
            git(work, "config", key, value)
        git(work, "remote", "add", "origin", str(bare))
        # A tree the size of a small app: 200 files, about 1 MiB.
        for i in range(200):
            (work / f"src-{i:03}.ts").write_text(f"export const value{i} = {i};\n" + "// padding\n" * 450)
        git(work, "add", "--all")
        git(work, "commit", "--quiet", "-m", "app")
        plain = root / "plain.git"
        git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(plain))
        git(work, "remote", "add", "plain", str(plain))
        git(work, "push", "--quiet", "origin", "main", "main:refs/heads/unprotected")
        git(work, "push", "--quiet", "plain", "main")
        config = root / "railguard.toml"
        config.write_text('[apps.tasks.deploy]\ntest_command = ["true"]\nprotected_branches = ["main"]\n')
        subprocess.run([sys.executable, "-m", "railguard", "--config", str(config), "hook", "install", str(bare)],
                       check=True, capture_output=True)
        targets = {"no hook": ("plain", "main"), "hook, other branch": ("origin", "unprotected"),
                   "hook, main (tested)": ("origin", "main")}
        timings: dict[str, list[float]] = {label: [] for label in targets}
        for round_number in range(runs):
            for label, (remote, branch) in targets.items():
                git(work, "commit", "--quiet", "--allow-empty", "-m", f"{label} {round_number}")
                started = time.perf_counter()
                git(work, "push", "--quiet", "--force", remote, f"HEAD:refs/heads/{branch}")
                timings[label].append(time.perf_counter() - started)
        baseline = statistics.median(timings["no hook"])
        print(f"{runs} pushes each, median wall time of `git push` over the local transport")
        for label, values in timings.items():
            median = statistics.median(values)
            print(f"  {label:<24} {median * 1000:7.0f} ms   {median / baseline:5.1f}x")


if __name__ == "__main__":
    main()
