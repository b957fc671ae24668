"""``railguard init``: the files a deploy needs, written (or printed) from templates.

Each generator returns :class:`PlannedFile` values; :func:`write_files` writes them all or
none. ``--runtime`` (the Dockerfile with a strict HEALTHCHECK, startup.sh, .dockerignore,
captain-definition, railguard.toml) is one generator; other generators (a scheduler's unit
files, ...) plug into the same command by returning planned files too.
"""

from railguard.init.files import DeployFilesExist, PlannedFile, render_for_print, write_files
from railguard.init.runtime import RUNTIMES, RuntimeOptions, runtime_files

__all__ = ["RUNTIMES", "DeployFilesExist", "PlannedFile", "RuntimeOptions", "render_for_print", "runtime_files",
           "write_files"]
