"""railguard.deploy imports its names on first use (PEP 562); mypy reads them from the
TYPE_CHECKING block instead. A name in one list and not the other would be Any to mypy."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import railguard.deploy as deploy


def test_every_lazy_export_of_railguard_deploy_is_also_imported_for_mypy_from_the_same_module() -> None:
    tree = ast.parse(Path(deploy.__file__).read_text(encoding="utf-8"))
    guarded = next(node for node in tree.body if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    for_mypy = {alias.asname: node.module.removeprefix("railguard.deploy.")
                for node in guarded.body if isinstance(node, ast.ImportFrom) and node.module
                for alias in node.names if alias.asname == alias.name}
    assert for_mypy == deploy._EXPORTS


def test_each_lazy_export_resolves_to_the_object_its_module_defines() -> None:
    for name, module in deploy._EXPORTS.items():
        assert getattr(deploy, name) is getattr(importlib.import_module(f"railguard.deploy.{module}"), name)
