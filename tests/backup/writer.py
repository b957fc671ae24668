"""A separate process that commits continuously, as the app would, until told to stop.

Each transaction appends task number N and sets the counter to N, so any consistent snapshot
holds exactly the tasks 1..counter: a prefix of the committed transactions. Prints
``committed=<N> errors=<E>`` when it stops (SIGTERM or the stop file appears).
"""

import signal
import sqlite3
import sys
import time
from pathlib import Path

database, stop_file = Path(sys.argv[1]), Path(sys.argv[2])
stopping = False


def stop(*_: object) -> None:
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
connection = sqlite3.connect(database, timeout=10, isolation_level=None)
connection.execute("PRAGMA journal_mode=WAL")
connection.executescript(
    """
    CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
    INSERT OR IGNORE INTO counter VALUES (1, 0);
    """
)
committed = connection.execute("SELECT n FROM counter").fetchone()[0]
errors = 0
Path(str(stop_file) + ".ready").touch()
while not stopping and not stop_file.exists():
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO ledger VALUES (?, ?)", (committed + 1, "x" * 200))
        connection.execute("UPDATE counter SET n = ?", (committed + 1,))
        connection.execute("COMMIT")
        committed += 1
    except sqlite3.Error as exc:
        errors += 1
        print(f"writer error: {exc}", file=sys.stderr)
        if connection.in_transaction:
            connection.execute("ROLLBACK")
    time.sleep(0.001)
print(f"committed={committed} errors={errors}", flush=True)
