"""What a data rollback would lose: the rows of the live database that the snapshot lacks.

The method (docs/deploy.md "Data rollback"), per table, with both databases opened read-only
(URI ``mode=ro``, and ``PRAGMA query_only``: this module can never write either file):

- a table in both: ``SELECT <columns both have> FROM live EXCEPT SELECT <same> FROM snapshot``,
  counted. That is every row written since the snapshot: inserted, or changed (its new version
  is not in the snapshot), over the columns both versions of the table have; the values of a
  column the migration added go with its table's schema in any case. The other direction is
  counted too (``back``): the rows deleted or changed since, which the restore brings back.
  ``EXCEPT`` compares whole rows as a set (NULL equal to NULL), so two identical rows count
  once, as SQLite's own set operations do;
- a table that only the live database has (the migration created it): all its rows;
- a table that only the snapshot has (the migration dropped it): nothing lost, its rows come back.

SQLite's own tables (``sqlite_sequence``, ``sqlite_stat1``, ...) are internal bookkeeping and
not counted. A table that cannot be read (a virtual table whose module this Python lacks) is
listed with the reason instead of a count, never left out.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class TableLoss:
    table: str
    #: Rows of the live table that the snapshot lacks (lost by the restore); None: not counted.
    lost: int | None
    #: Rows of the snapshot's table that the live one lacks (they come back); None: not counted.
    back: int | None
    #: ``both``, ``live`` (created since the snapshot) or ``snapshot`` (dropped since).
    present_in: str
    #: The columns the rows were compared over.
    columns: list[str]
    #: Why a count is missing, or what else to know; None.
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """``tasks: 12 rows lost, 1 back`` / ``tags (created since the snapshot): 4 rows lost``."""
        where = {"both": "", "live": " (created since the snapshot)", "snapshot": " (dropped since the snapshot)"}
        if self.note is not None and self.lost is None:
            return f"{self.table}{where[self.present_in]}: not counted ({self.note})"
        text = f"{self.table}{where[self.present_in]}: {_rows(self.lost or 0)} lost"
        if self.back:
            text += f", {_rows(self.back)} back"
        return text + (f" ({self.note})" if self.note else "")


def rows_written_since(snapshot: Path, live: Path) -> list[TableLoss]:
    """Per table, what restoring ``snapshot`` (a raw SQLite file) over ``live`` loses and brings back."""
    with _read_only_pair(snapshot, live) as connection:
        before = _tables(connection, "main")
        after = _tables(connection, "live")
        losses = []
        for table in sorted(set(before) | set(after)):
            if table not in after:
                losses.append(TableLoss(table, 0, _count(connection, "main", table), "snapshot", before[table]))
            elif table not in before:
                losses.append(_counted(connection, table, after[table], "live",
                                       lambda t=table: _count(connection, "live", t)))
            else:
                columns = [column for column in after[table] if column in before[table]]
                if not columns:
                    losses.append(TableLoss(table, _count(connection, "live", table), _count(connection, "main", table),
                                            "both", [], note="no column in common: every row counted"))
                    continue
                losses.append(_compared(connection, table, columns))
        return losses


def _compared(connection: sqlite3.Connection, table: str, columns: list[str]) -> TableLoss:
    listed = ", ".join(_quote(column) for column in columns)
    name = _quote(table)
    try:
        lost = _scalar(connection, f"SELECT count(*) FROM (SELECT {listed} FROM live.{name} "
                                   f"EXCEPT SELECT {listed} FROM main.{name})")
        back = _scalar(connection, f"SELECT count(*) FROM (SELECT {listed} FROM main.{name} "
                                   f"EXCEPT SELECT {listed} FROM live.{name})")
    except sqlite3.Error as exc:
        return TableLoss(table, None, None, "both", columns, note=f"could not compare: {exc}")
    return TableLoss(table, lost, back, "both", columns)


def _counted(connection: sqlite3.Connection, table: str, columns: list[str], present_in: str,
             count: Any) -> TableLoss:
    try:
        return TableLoss(table, count(), 0, present_in, columns)
    except sqlite3.Error as exc:
        return TableLoss(table, None, None, present_in, columns, note=f"could not count: {exc}")


@contextlib.contextmanager
def _read_only_pair(snapshot: Path, live: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"{Path(snapshot).absolute().as_uri()}?mode=ro", uri=True)
    try:
        connection.execute("PRAGMA query_only = ON")
        # An ATTACH of a URI names the file the same way: read-only, never created if missing.
        connection.execute("ATTACH DATABASE ? AS live", (f"{Path(live).absolute().as_uri()}?mode=ro",))
        yield connection
    finally:
        connection.close()


def _tables(connection: sqlite3.Connection, schema: str) -> dict[str, list[str]]:
    names = [row[0] for row in connection.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
    return {name: [row[1] for row in connection.execute(f"PRAGMA {schema}.table_info({_quote(name)})")]
            for name in names}


def _count(connection: sqlite3.Connection, schema: str, table: str) -> int:
    return _scalar(connection, f"SELECT count(*) FROM {schema}.{_quote(table)}")


def _scalar(connection: sqlite3.Connection, sql: str) -> int:
    return int(connection.execute(sql).fetchone()[0])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"
