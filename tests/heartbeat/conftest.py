from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_http import JsonReceiver, PingReceiver


@pytest.fixture
def pings() -> Iterator[PingReceiver]:
    server = PingReceiver()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    server = JsonReceiver()
    yield server
    server.stop()
