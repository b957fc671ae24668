"""``railguard init``: the files a deploy needs, written (or printed) from templates.

Each generator returns :class:`PlannedFile` values; :func:`write_files` writes them all or
none. ``--runtime`` (the Dockerfile with a strict HEALTHCHECK, startup.sh, .dockerignore,
captain-definition, railguard.toml) is one generator; other generators (a scheduler's unit
files, ...) plug into the same command by returning planned files too.
"""

from railguard.init.files import DeployFilesExist, PlannedFile, render_for_print, write_files
from railguard.init.runtime import RUNTIMES, RuntimeOptions, runtime_files
from railguard.init.scheduler import (SCHEDULERS, SchedulerOptions, cron_to_calendar, next_steps, railguard_command,
                                      scheduler_files)

__all__ = ["RUNTIMES", "SCHEDULERS", "DeployFilesExist", "PlannedFile", "RuntimeOptions", "SchedulerOptions",
           "cron_to_calendar", "next_steps", "railguard_command", "render_for_print", "runtime_files",
           "scheduler_files", "write_files"]
