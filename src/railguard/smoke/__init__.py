"""``railguard smoke``: proof after a deploy that a new, healthy process is serving.

:mod:`checks` judges one set of answers (pure); :mod:`runner` fetches them until they pass
or the wait runs out, and sends "deploy OK <commit>" once per commit.

The names below are imported on first use (PEP 562), as in :mod:`railguard.deploy`:
``railguard status`` reads the smoke record (:mod:`railguard.smoke.record`) and needs neither
the runner's HTTP client nor its notifications.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from railguard import lazy

_EXPORTS = {
    "Observation": "checks", "SmokeCheck": "checks", "evaluate": "checks", "SmokeFailed": "runner",
    "SmokeReport": "runner", "notify_result": "runner", "run_smoke": "runner",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names for mypy, which would otherwise see each as Any
    # ("X as X": exported, since mypy cannot read the computed __all__)
    from railguard.smoke.checks import Observation as Observation
    from railguard.smoke.checks import SmokeCheck as SmokeCheck
    from railguard.smoke.checks import evaluate as evaluate
    from railguard.smoke.runner import SmokeFailed as SmokeFailed
    from railguard.smoke.runner import SmokeReport as SmokeReport
    from railguard.smoke.runner import notify_result as notify_result
    from railguard.smoke.runner import run_smoke as run_smoke

__getattr__ = lazy.exports(__name__, _EXPORTS)
