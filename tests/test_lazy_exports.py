"""Packages that import their names on first use (PEP 562, :mod:`railguard.lazy`); mypy reads
them from each package's TYPE_CHECKING block instead. A name in one list and not the other
would be Any to mypy, or missing at run time."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

LAZY_PACKAGES = ["railguard.backup", "railguard.deploy", "railguard.destinations", "railguard.drill", "railguard.monitor", "railguard.smoke"]


@pytest.mark.parametrize("package_name", LAZY_PACKAGES)
def test_every_lazy_export_is_also_imported_for_mypy_from_the_same_module(package_name: str) -> None:
    package = importlib.import_module(package_name)
    tree = ast.parse(Path(package.__file__).read_text(encoding="utf-8"))
    guarded = next(node for node in tree.body if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    for_mypy = {alias.asname: node.module.removeprefix(f"{package_name}.")
                for node in guarded.body if isinstance(node, ast.ImportFrom) and node.module
                for alias in node.names if alias.asname == alias.name}
    assert for_mypy == package._EXPORTS


@pytest.mark.parametrize("package_name", LAZY_PACKAGES)
def test_each_lazy_export_resolves_to_the_object_its_module_defines(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for name, module in package._EXPORTS.items():
        assert getattr(package, name) is getattr(importlib.import_module(f"{package_name}.{module}"), name)


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    import railguard.drill as drill

    with pytest.raises(AttributeError, match="'railguard.drill' has no attribute 'nothing_here'"):
        drill.nothing_here  # noqa: B018
