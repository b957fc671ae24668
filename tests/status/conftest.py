from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from railguard.cli.context import Context


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """``clock(delta)``: every command's "now" is the real time plus ``delta`` from here on."""

    def move(delta: timedelta) -> None:
        monkeypatch.setattr(Context, "now", staticmethod(lambda: datetime.now(timezone.utc) + delta))

    return move
