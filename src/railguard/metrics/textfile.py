"""The textfiles node_exporter reads in ``[metrics] textfile_directory``: ``railguard.prom``,
rewritten after every job run (backup, drill, replicate) from what is on disk, and
``railguard_monitor.prom``, rewritten by the monitor after each round.

Best effort: a textfile that cannot be written is logged and never changes the job's result.
The job wrappers (:mod:`railguard.jobs`, ``railguard drill``) hand :func:`refresh_textfile` to
:class:`railguard.notify.watch.JobWatch`, so the watch, which the drill runs inside, does not import
the metrics, which read the drill's log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from railguard.config import Settings
from railguard.errors import RailguardError
from railguard.metrics.collect import backup_families, monitor_families, state_families, utc_now
from railguard.metrics.exposition import write_textfile
from railguard.monitor.state import TargetState

log = logging.getLogger("railguard.watch")  # the logger these warnings have always used

TEXTFILE_NAME = "railguard.prom"
MONITOR_TEXTFILE_NAME = "railguard_monitor.prom"


def refresh_textfile(settings: Settings, now: datetime | None = None) -> None:
    """Rewrite ``railguard.prom`` in the textfile directory, when one is configured; best effort.
    ``now``: the time the file speaks for (the recovery point's age), by default the wall clock's."""
    directory = settings.metrics.textfile_directory
    if directory is None:
        return
    try:
        write_textfile(directory, TEXTFILE_NAME, [*backup_families(settings, now or utc_now()),
                                                  *state_families(settings)])
    except (OSError, RailguardError) as exc:
        log.warning("cannot write the metrics textfile in %s: %s", directory, getattr(exc, "strerror", None) or exc)


def refresh_monitor_textfile(settings: Settings, states: Iterable[tuple[str, TargetState]]) -> None:
    """Rewrite ``railguard_monitor.prom`` from the monitor's target states, when a textfile
    directory is configured; best effort, logged on the monitor's logger."""
    directory = settings.metrics.textfile_directory
    if directory is None:
        return
    try:
        write_textfile(directory, MONITOR_TEXTFILE_NAME, monitor_families(sorted(states)))
    except OSError as exc:
        logging.getLogger("railguard.monitor").warning("cannot write the metrics textfile in %s: %s",
                                                       directory, exc.strerror or exc)
