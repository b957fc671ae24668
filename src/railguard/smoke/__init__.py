"""``railguard smoke``: proof after a deploy that a new, healthy process is serving.

:mod:`checks` judges one set of answers (pure); :mod:`runner` fetches them until they pass
or the wait runs out, and sends "deploy OK <commit>" once per commit.

The names below are imported on first use (PEP 562), as in :mod:`railguard.deploy`:
``railguard status`` reads the smoke record (:mod:`railguard.smoke.record`) and needs neither
the runner's HTTP client nor its notifications.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Observation": "checks", "SmokeCheck": "checks", "evaluate": "checks", "SmokeFailed": "runner",
    "SmokeReport": "runner", "notify_result": "runner", "run_smoke": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
