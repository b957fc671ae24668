"""``railguard smoke``: proof after a deploy that a new, healthy process is serving.

:mod:`checks` judges one set of answers (pure); :mod:`runner` fetches them until they pass
or the wait runs out, and sends "deploy OK <commit>" once per commit.
"""

from railguard.smoke.checks import Observation, SmokeCheck, evaluate
from railguard.smoke.runner import SmokeFailed, SmokeReport, notify_result, run_smoke

__all__ = ["Observation", "SmokeCheck", "SmokeFailed", "SmokeReport", "evaluate", "notify_result", "run_smoke"]
