"""The textfile node_exporter reads: ``railguard.prom`` in ``[metrics] textfile_directory``,
rewritten after every job run (backup, drill, replicate) from what is on disk.

Best effort: a textfile that cannot be written is logged and never changes the job's result.
The job wrappers (:mod:`railguard.jobs`, ``railguard drill``) hand :func:`refresh_textfile` to
:class:`railguard.notify.watch.JobWatch`, so the watch, which the drill runs inside, does not import
the metrics, which read the drill's log.
"""

from __future__ import annotations

import logging

from railguard.config import Settings
from railguard.errors import RailguardError
from railguard.metrics.collect import backup_families, state_families
from railguard.metrics.exposition import write_textfile

log = logging.getLogger("railguard.watch")  # the logger these warnings have always used

TEXTFILE_NAME = "railguard.prom"


def refresh_textfile(settings: Settings) -> None:
    """Rewrite ``railguard.prom`` in the textfile directory, when one is configured; best effort."""
    directory = settings.metrics.textfile_directory
    if directory is None:
        return
    try:
        write_textfile(directory, TEXTFILE_NAME, [*backup_families(settings), *state_families(settings)])
    except (OSError, RailguardError) as exc:
        log.warning("cannot write the metrics textfile in %s: %s", directory, getattr(exc, "strerror", None) or exc)
