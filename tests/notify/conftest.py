from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_http import JsonReceiver, PingReceiver


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    server = JsonReceiver()
    yield server
    server.stop()


@pytest.fixture
def pings() -> Iterator[PingReceiver]:
    """A heartbeat server on 127.0.0.1 recording each ping (tests/notify/test_heartbeat.py)."""
    server = PingReceiver()
    yield server
    server.stop()
