"""What every command needs: the settings (file + flag overrides) and the selected app.

The configuration (pydantic) is imported when a command first asks for its settings, not when
the command line starts: ``railguard --help`` and ``railguard probe`` never read one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from railguard.config import AppSettings, Settings


@dataclass
class Context:
    config_path: str | None = None
    app_name: str | None = None
    _base: Settings | None = field(default=None, repr=False)

    def settings(self, overrides: dict[str, tuple[str, Any]] | None = None) -> Settings:
        """Settings with flag overrides applied. Keys starting with ``app.`` are relative to
        the selected app: ``{"app.backup.compression": ("--compression", "gzip")}``."""
        from railguard.config import find_config, load_settings

        path = find_config(self.config_path)
        if self._base is None:
            self._base = load_settings(path)
        given = {key: value for key, value in (overrides or {}).items() if value[1] is not None}
        if not given:
            return self._base
        name, _ = self._base.app(self.app_name)
        absolute = {(f"apps.{name}." + key[4:] if key.startswith("app.") else key): value
                    for key, value in given.items()}
        return load_settings(path, absolute)

    def app(self, overrides: dict[str, tuple[str, Any]] | None = None) -> tuple[Settings, str, AppSettings]:
        settings = self.settings(overrides)
        name, app = settings.app(self.app_name)
        return settings, name, app

    @staticmethod
    def now() -> datetime:
        """The clock, read once per command at the edge and passed down."""
        return datetime.now(timezone.utc)
