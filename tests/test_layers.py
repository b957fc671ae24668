"""The import graph: no cycle, the layers of pyproject.toml, and a configuration that loads
without pulling in the capabilities it configures."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
                    reason="import-linter is not installed (pip install -e '.[test]')")
def test_the_import_contracts_of_pyproject_toml_are_kept() -> None:
    lint = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 broken" in lint.stdout


def test_loading_a_configuration_imports_no_capability_package(tmp_path: Path) -> None:
    """keep_within, a drill expectation, a schedule and two apps' backup names are all checked
    with railguard.values: the configuration sits under the capabilities, not beside them."""
    config = tmp_path / "railguard.toml"
    config.write_text(textwrap.dedent(f"""\
        [apps.tasks]
        database = "{tmp_path / 'tasks.db'}"
        [apps.tasks.retention]
        keep_within = "1y6m"
        [apps.tasks.schedule]
        backup = "every 90s"
        drill = "0 4 1 * *"
        [[apps.tasks.drill.assertions]]
        sql = "SELECT count(*) FROM tasks"
        expect = "> 0"
        [apps.notes]
        database = "{tmp_path / 'notes.db'}"
        """))
    probe = ("import sys\nfrom pathlib import Path\nfrom railguard.config import load_settings\n"
             f"load_settings(Path({str(config)!r}))\n"
             "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('railguard.')}))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "['config', 'errors', 'values']"
