"""Names of a package imported on first use (PEP 562), for the packages whose light users must
not pay for their heavy modules: the pre-receive hook imports :mod:`railguard.deploy.hook.main`
without the CapRover client; ``railguard status`` reads backup.log, the catalog, drill.log,
destinations.log, the monitor's store and the smoke record without the backup engine, the drill
runner, the destinations' jobs (prune, replicate), the monitor's HTTP probe and runner, or the
smoke check's HTTP client.

Each such package lists its names in ``_EXPORTS`` (name: submodule), sets
``__getattr__ = lazy.exports(__name__, _EXPORTS)``, and imports the same names under
``if TYPE_CHECKING:`` for mypy, which would otherwise see each as ``Any``
(tests/test_lazy_exports.py keeps the two lists equal). A function that shares its module's
name (``monitor.probe.probe``) cannot be one of the names: once anything imports the module, the
package's attribute of that name is the module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``names[name]`` is the submodule defining it."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    return __getattr__
