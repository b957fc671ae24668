"""The one typed configuration model, read from ``railguard.toml``.

Where the file comes from: ``--config PATH``, else ``$RAILGUARD_CONFIG``, else
``./railguard.toml``, else the built-in defaults (the team's plan: one app ``tasks`` with its
database at ``/app/data/tasks.db``). Every setting can be overridden by a command-line flag;
flag values go through the same validation as the file, so a bad flag value gets the same
kind of message as a bad key.

Secrets never live here: settings name an environment variable (``token_env = "..."``) and
:mod:`railguard.secrets` reads it, or the file named by ``<VAR>_FILE``.

Layout of the file::

    timezone = "UTC"                 # names of backup files, retention periods
    state_dir = "/var/lib/railguard" # railguard's own small state (deploys, monitor, ...)

    [apps.tasks]                     # one table per app; a single app needs no --app
    database = "/app/data/tasks.db"

    [apps.tasks.backup]
    directory = "/app/data/backups"
    compression = "zstd"

    [apps.tasks.retention]
    keep_daily = 7
    keep_weekly = 4

Later capabilities add their own section model here (destinations, drill, deploy, smoke,
monitor, notifications, gate), each a small class with defaults, so an old file stays valid.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from railguard.errors import ConfigError, NotFound, UsageError

DEFAULT_CONFIG_NAME = "railguard.toml"
CONFIG_ENV = "RAILGUARD_CONFIG"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if text and "".join(number + unit for number, unit in parts) == text:
            return timedelta(seconds=sum(float(n) * _DURATION_UNITS[u] for n, u in parts))
    raise ValueError(f"expected a duration such as '30s', '5m', '1h30m' or '2d', got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _check_timezone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"expected an IANA time zone such as 'UTC' or 'Europe/Madrid', got {value!r}") from exc
    return str(value)


TimeZoneName = Annotated[str, BeforeValidator(_check_timezone)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class BackupSettings(Section):
    directory: Path = Path("/app/data/backups")
    #: ``backup-api``: SQLite's online backup API in a single step; ``vacuum-into``: a compacted copy.
    method: Literal["backup-api", "vacuum-into"] = "backup-api"
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    #: Compression level; None picks the algorithm's default (zstd 3, gzip 6).
    level: int | None = Field(default=None, ge=1, le=22)
    #: ``integrity``: PRAGMA integrity_check (thorough); ``quick``: PRAGMA quick_check (~10x faster).
    check: Literal["integrity", "quick"] = "integrity"
    #: How long to keep retrying while the source database is locked.
    busy_timeout: Duration = timedelta(seconds=30)
    #: Apply the retention policy after each successful backup.
    prune: bool = True


class RetentionSettings(Section):
    """Which backups to keep: restic's ``forget`` rules. The default is the plan's 7 daily + 4 weekly."""

    keep_last: int | None = Field(default=None, ge=1)
    keep_hourly: int | None = Field(default=None, ge=1)
    keep_daily: int | None = Field(default=7, ge=1)
    keep_weekly: int | None = Field(default=4, ge=1)
    keep_monthly: int | None = Field(default=None, ge=1)
    keep_yearly: int | None = Field(default=None, ge=1)
    #: restic's duration form (``"2d"``, ``"1y6m"``): keep everything that recent, counted from the newest backup.
    keep_within: str | None = None


class AppSettings(Section):
    database: Path = Path("/app/data/tasks.db")
    #: Base URL of the running app (``/health``, ``/metrics``, ``/version`` live under it).
    url: str | None = None
    backup: BackupSettings = Field(default_factory=BackupSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)


class Settings(Section):
    timezone: TimeZoneName = "UTC"
    state_dir: Path = Path("/var/lib/railguard")
    apps: dict[str, AppSettings] = Field(default_factory=lambda: {"tasks": AppSettings()})

    #: Where these settings came from (a path, or None for the built-in defaults).
    source: Path | None = Field(default=None, exclude=True)

    def app(self, name: str | None = None) -> tuple[str, AppSettings]:
        """The named app, or the only one when ``name`` is None."""
        if name is None:
            if len(self.apps) == 1:
                return next(iter(self.apps.items()))
            raise UsageError(
                f"{self.source or 'the configuration'} defines {len(self.apps)} apps; say which one",
                hint=f"Add --app NAME (one of: {', '.join(sorted(self.apps))})",
            )
        if name not in self.apps:
            raise NotFound(
                f"no app named {name!r} in {self.source or 'the configuration'}",
                hint=f"Known apps: {', '.join(sorted(self.apps)) or 'none'}",
            )
        return name, self.apps[name]


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """The configuration file to read, or None for the defaults."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist",
                              hint="Check --config, or write one with: railguard init")
        return path
    if env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"configuration file {path} (from ${CONFIG_ENV}) does not exist",
                              hint=f"Fix or unset ${CONFIG_ENV}")
        return path
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load_settings(
    path: Path | None,
    overrides: Mapping[str, tuple[str, Any]] | None = None,
) -> Settings:
    """Read and validate the configuration.

    ``overrides`` maps a dotted key (``"apps.tasks.backup.compression"``) to ``(flag, value)``;
    a value that fails validation is reported against the flag that supplied it.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}", hint="Fix the syntax at the line shown") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the configuration: {exc}") from exc
    origins: dict[tuple[str, ...], str] = {}
    for dotted, (flag, value) in (overrides or {}).items():
        keys = tuple(dotted.split("."))
        _set_nested(raw, keys, value)
        origins[keys] = flag
    try:
        settings = Settings.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise _config_error(exc, path, origins) from None
    settings.source = path
    return settings


def _set_nested(target: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    if keys[0] == "apps" and "apps" not in target:
        # Overriding an app's setting without an [apps] table means "the default app".
        target["apps"] = {keys[1]: {}}
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _config_error(exc: pydantic.ValidationError, path: Path | None, origins: dict[tuple[str, ...], str]) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(str(part) for part in first["loc"])
    key = ".".join(loc)
    if first["type"] == "extra_forbidden":
        detail = "unknown key"
        hint = "Remove it or check its spelling against docs/configuration.md"
    else:
        detail = first["msg"].removeprefix("Value error, ")
        hint = "See docs/configuration.md for the expected form"
    flag = origins.get(loc)
    where = flag if flag else f"{path or 'configuration'}: {key}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ConfigError(f"{where}: {detail}{more}", hint=hint)
