from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest


def _fill(database: Path, megabytes: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB)")
    for _ in range(megabytes * 16):
        connection.execute("INSERT INTO blobs(data) VALUES (?)", (rng.randbytes(64 * 1024),))
    connection.commit()
    connection.close()


@pytest.fixture
def fill_random():
    return _fill
