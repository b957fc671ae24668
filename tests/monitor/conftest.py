from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_http import JsonReceiver, SwitchableTarget


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    server = JsonReceiver()
    yield server
    server.stop()


@pytest.fixture
def target() -> Iterator[SwitchableTarget]:
    server = SwitchableTarget()
    yield server
    server.stop()
