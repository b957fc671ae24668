"""The shape of a SQLite database: its schema and its row counts, read without writing, and what
changed between two of them.

The rehearsal reads the shape of the snapshot's copy before the candidate commit boots on it and
after its migrations ran, and reports the difference; ``railguard rollback`` compares the
pre-deploy snapshot with the live database to say whether the deployed commit changed the
schema. Both read through :func:`read_shape`, which opens the file read-only (``mode=ro``): the
live database is never opened for writing, and a reader never blocks its writers (WAL).

What counts as the schema: the tables (their columns with declared type, ``NOT NULL``, default
and primary-key position), the indexes railguard can name (SQLite's own ``sqlite_autoindex_*``
follow their table's constraints and are left out), views, triggers, and ``PRAGMA
user_version``, which many apps use as their migration counter. Row counts are not the schema:
a deploy that only wrote rows changed no schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from railguard.errors import RailguardError


class ShapeUnreadable(RailguardError):
    """The database could not be opened or read (not a database, no permission)."""


@dataclass(frozen=True)
class Column:
    name: str
    #: The declared type as written (``""`` when none was given).
    type: str
    notnull: bool
    #: The default as SQL text, None when the column has none.
    default: str | None
    #: 1-based position in the primary key, 0 when not part of it.
    pk: int

    def describe(self) -> str:
        """``priority INTEGER NOT NULL DEFAULT 0``"""
        parts = [self.name, self.type] if self.type else [self.name]
        if self.pk:
            parts.append("PRIMARY KEY")
        if self.notnull:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        return " ".join(parts)


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    unique: bool
    #: Column names in index order; an expression's place is ``<expr>``.
    columns: tuple[str, ...]

    def describe(self) -> str:
        """``UNIQUE idx_tasks_title ON tasks(title)``"""
        return f"{'UNIQUE ' if self.unique else ''}{self.name} ON {self.table}({', '.join(self.columns)})"


@dataclass(frozen=True)
class Shape:
    tables: Mapping[str, tuple[Column, ...]]
    indexes: Mapping[str, Index]
    #: name -> the SQL that made it.
    views: Mapping[str, str]
    triggers: Mapping[str, str]
    user_version: int
    #: Rows per table; None for a table that could not be counted (a virtual table whose module
    #: this SQLite lacks). Empty when read with ``count_rows=False``.
    rows: Mapping[str, int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"tables": {name: [column.describe() for column in columns] for name, columns in self.tables.items()},
                "indexes": [index.describe() for index in self.indexes.values()],
                "views": sorted(self.views), "triggers": sorted(self.triggers),
                "user_version": self.user_version, "rows": dict(self.rows)}


def read_shape(path: Path, *, count_rows: bool = True) -> Shape:
    """The shape of the database at ``path``, opened read-only (a missing file is an error, never
    an empty database made on the spot)."""
    if not path.is_file():
        raise ShapeUnreadable(f"{path} is not a file", hint="Give the path of a SQLite database")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as connection:
            return _read(connection, count_rows)
    except sqlite3.Error as exc:
        raise ShapeUnreadable(f"cannot read the schema of {path}: {exc}",
                              hint="Check that it is a SQLite database railguard may read") from exc


def _read(connection: sqlite3.Connection, count_rows: bool) -> Shape:
    objects = connection.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    tables: dict[str, tuple[Column, ...]] = {}
    indexes: dict[str, Index] = {}
    views: dict[str, str] = {}
    triggers: dict[str, str] = {}
    for kind, name, table, sql in objects:
        if kind == "table":
            tables[name] = tuple(
                Column(name=row[1], type=row[2] or "", notnull=bool(row[3]), default=row[4], pk=row[5])
                for row in connection.execute(f"PRAGMA table_info({_quoted(name)})"))
        elif kind == "index":
            unique = bool(connection.execute(
                "SELECT \"unique\" FROM pragma_index_list(?) WHERE name = ?", (table, name)).fetchone()[0])
            columns = tuple(row[2] if row[2] is not None else "<expr>"
                            for row in connection.execute(f"PRAGMA index_info({_quoted(name)})"))
            indexes[name] = Index(name=name, table=table, unique=unique, columns=columns)
        elif kind == "view":
            views[name] = sql or ""
        elif kind == "trigger":
            triggers[name] = sql or ""
    user_version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    rows = dict(_count(connection, tables)) if count_rows else {}
    return Shape(tables=tables, indexes=indexes, views=views, triggers=triggers, user_version=user_version,
                 rows=rows)


def _count(connection: sqlite3.Connection, tables: Mapping[str, object]) -> Iterator[tuple[str, int | None]]:
    for name in tables:
        try:
            yield name, int(connection.execute(f"SELECT count(*) FROM {_quoted(name)}").fetchone()[0])
        except sqlite3.OperationalError:  # a virtual table of a module this SQLite does not have
            yield name, None


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# --- what changed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeChange:
    """What changed from ``before`` to ``after``; every list is sorted, so two reads compare."""

    tables_added: list[str]
    tables_removed: list[str]
    #: table -> columns, for tables both shapes have.
    columns_added: dict[str, list[Column]]
    columns_removed: dict[str, list[Column]]
    #: table -> (before, after) of a column both have that is declared differently.
    columns_changed: dict[str, list[tuple[Column, Column]]]
    indexes_added: list[Index]
    indexes_removed: list[Index]
    #: (before, after) of an index of the same name over other columns or uniqueness.
    indexes_changed: list[tuple[Index, Index]]
    views_added: list[str]
    views_removed: list[str]
    views_changed: list[str]
    triggers_added: list[str]
    triggers_removed: list[str]
    triggers_changed: list[str]
    user_version: tuple[int, int]
    #: Every table of either shape -> (rows before, rows after); None where it did not exist
    #: (or could not be counted).
    rows: dict[str, tuple[int | None, int | None]]

    @property
    def schema_changed(self) -> bool:
        return bool(self.tables_added or self.tables_removed or self.columns_added or self.columns_removed
                    or self.columns_changed or self.indexes_added or self.indexes_removed or self.indexes_changed
                    or self.views_added or self.views_removed or self.views_changed or self.triggers_added
                    or self.triggers_removed or self.triggers_changed
                    or self.user_version[0] != self.user_version[1])

    def schema_lines(self) -> list[str]:
        """One line per change of the schema, in words; empty when the schema is the same."""
        lines = [f"table {name} added" for name in self.tables_added]
        lines += [f"table {name} removed" for name in self.tables_removed]
        for table, columns in self.columns_added.items():
            lines += [f"column {table}.{column.describe()} added" for column in columns]
        for table, columns in self.columns_removed.items():
            lines += [f"column {table}.{column.name} removed" for column in columns]
        for table, pairs in self.columns_changed.items():
            lines += [f"column {table}.{old.name} changed: {old.describe()} -> {new.describe()}" for old, new in pairs]
        lines += [f"index {index.describe()} added" for index in self.indexes_added]
        lines += [f"index {index.name} removed" for index in self.indexes_removed]
        lines += [f"index {old.name} changed: {old.describe()} -> {new.describe()}" for old, new in self.indexes_changed]
        for kind in ("views", "triggers"):
            singular = kind[:-1]
            lines += [f"{singular} {name} added" for name in getattr(self, f"{kind}_added")]
            lines += [f"{singular} {name} removed" for name in getattr(self, f"{kind}_removed")]
            lines += [f"{singular} {name} changed" for name in getattr(self, f"{kind}_changed")]
        if self.user_version[0] != self.user_version[1]:
            lines.append(f"user_version {self.user_version[0]} -> {self.user_version[1]}")
        return lines

    def row_lines(self) -> list[str]:
        """``rows tasks: 1200 -> 1200`` for every table of either shape."""
        return [f"rows {table}: {_count_text(before)} -> {_count_text(after)}"
                for table, (before, after) in self.rows.items()]

    def lines(self) -> list[str]:
        """The schema's changes (or ``schema unchanged``), then the row counts."""
        return (self.schema_lines() or ["schema unchanged"]) + self.row_lines()

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_changed": self.schema_changed,
            "tables_added": self.tables_added, "tables_removed": self.tables_removed,
            "columns_added": {t: [c.describe() for c in cs] for t, cs in self.columns_added.items()},
            "columns_removed": {t: [c.name for c in cs] for t, cs in self.columns_removed.items()},
            "columns_changed": {t: [{"before": a.describe(), "after": b.describe()} for a, b in pairs]
                                for t, pairs in self.columns_changed.items()},
            "indexes_added": [i.describe() for i in self.indexes_added],
            "indexes_removed": [i.describe() for i in self.indexes_removed],
            "indexes_changed": [{"before": a.describe(), "after": b.describe()} for a, b in self.indexes_changed],
            "views_added": self.views_added, "views_removed": self.views_removed, "views_changed": self.views_changed,
            "triggers_added": self.triggers_added, "triggers_removed": self.triggers_removed,
            "triggers_changed": self.triggers_changed,
            "user_version": {"before": self.user_version[0], "after": self.user_version[1]},
            "rows": {table: {"before": before, "after": after} for table, (before, after) in self.rows.items()},
        }


def compare(before: Shape, after: Shape) -> ShapeChange:
    """What changed from ``before`` to ``after`` (pure)."""
    common = sorted(before.tables.keys() & after.tables.keys())
    columns_added: dict[str, list[Column]] = {}
    columns_removed: dict[str, list[Column]] = {}
    columns_changed: dict[str, list[tuple[Column, Column]]] = {}
    for table in common:
        old = {column.name: column for column in before.tables[table]}
        new = {column.name: column for column in after.tables[table]}
        if added := [new[name] for name in new if name not in old]:
            columns_added[table] = added
        if removed := [old[name] for name in old if name not in new]:
            columns_removed[table] = removed
        if changed := [(old[name], new[name]) for name in old if name in new and old[name] != new[name]]:
            columns_changed[table] = changed
    index_names = before.indexes.keys() & after.indexes.keys()
    views_added, views_removed, views_changed = _named_sql(before.views, after.views)
    triggers_added, triggers_removed, triggers_changed = _named_sql(before.triggers, after.triggers)
    return ShapeChange(
        tables_added=sorted(after.tables.keys() - before.tables.keys()),
        tables_removed=sorted(before.tables.keys() - after.tables.keys()),
        columns_added=columns_added, columns_removed=columns_removed, columns_changed=columns_changed,
        indexes_added=[after.indexes[name] for name in sorted(after.indexes.keys() - before.indexes.keys())],
        indexes_removed=[before.indexes[name] for name in sorted(before.indexes.keys() - after.indexes.keys())],
        indexes_changed=[(before.indexes[name], after.indexes[name]) for name in sorted(index_names)
                         if before.indexes[name] != after.indexes[name]],
        views_added=views_added, views_removed=views_removed, views_changed=views_changed,
        triggers_added=triggers_added, triggers_removed=triggers_removed, triggers_changed=triggers_changed,
        user_version=(before.user_version, after.user_version),
        rows={table: (before.rows.get(table), after.rows.get(table))
              for table in sorted(before.rows.keys() | after.rows.keys())},
    )


def _named_sql(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[list[str], list[str], list[str]]:
    """Added, removed and changed names of views (or triggers), each made by its SQL."""
    return (sorted(after.keys() - before.keys()), sorted(before.keys() - after.keys()),
            sorted(name for name in before.keys() & after.keys() if before[name] != after[name]))


def _count_text(count: int | None) -> str:
    return "-" if count is None else str(count)
