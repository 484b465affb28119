"""A database tap's tables, built from the rows its catalog queries return.

The dialect runs its database's catalog queries (relations, columns, primary keys); these helpers
turn the rows into :class:`SqlTable` (filtered by `include`/`exclude` globs on `schema.table`,
each column typed and rendered by the dialect's type map), and a table into what the catalog says
of its stream: the JSON Schema, the keys, the columns INCREMENTAL can bookmark, the metadata.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SqlColumn:
    name: str
    schema: dict[str, Any]  # the JSON Schema of its values
    expression: str  # SQL over the quoted column name that renders the value as the schema promises
    # For a dialect with a compiled row path: (SQL over the quoted name, how the path turns its text
    # into the same JSON value); None: the column takes `expression`.
    native: tuple[str, str] | None = None


@dataclass(slots=True)
class SqlTable:
    schema: str
    name: str
    kind: str  # the database's own word for the relation (PostgreSQL: r, p, v, m, f)
    row_estimate: int | None  # None: unknown, left out of the catalog rather than shown as 0
    qualified: str  # schema.table, quoted as the dialect quotes names
    is_view: bool = False
    columns: list[SqlColumn] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)

    @property
    def stream_id(self) -> str:
        return f"{self.schema}-{self.name}"


@dataclass(frozen=True, slots=True)
class TableFilter:
    """`schema.table` globs: a table is read when it matches `include` (default every table) and not `exclude`."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()

    def wants(self, schema: str, name: str) -> bool:
        full = f"{schema}.{name}"
        return _matches(full, self.include or ["*.*"]) and not _matches(full, self.exclude)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def assemble(
    tables: dict[Hashable, SqlTable],
    columns: Iterable[Sequence[Any]],
    keys: Iterable[Sequence[Any]],
    column: Callable[..., SqlColumn],
) -> list[SqlTable]:
    """Tables with their columns and keys, in the order `tables` has them.

    `columns` rows are (table id, column name, *what `column` needs to type it), in column order;
    `keys` rows are (table id, [key column names in key order]). Rows of other tables are ignored.
    """
    for table_id, name, *type_info in columns:
        if table_id in tables:
            tables[table_id].columns.append(column(name, *type_info))
    for table_id, key in keys:
        if table_id in tables:
            tables[table_id].primary_key = list(key)
    return list(tables.values())


def orderable(schema: dict[str, Any]) -> bool:
    """A column INCREMENTAL can bookmark: its values are ordered and compare by value once sent as JSON."""
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or [])
    if "array" in types or "object" in types:
        return False
    return bool(types & {"integer", "number"}) or schema.get("format") in ("date-time", "date", "singer.decimal")


def stream_schema(table: SqlTable) -> dict[str, Any]:
    return {"type": "object", "properties": {c.name: c.schema for c in table.columns}}


def discovery_metadata(table: SqlTable) -> dict[str, Any]:
    metadata: dict[str, Any] = {"is-view": table.is_view, "schema-name": table.schema, "table-name": table.name}
    if table.row_estimate is not None:  # unknown (never analysed): left out rather than 0
        metadata["row-count"] = table.row_estimate
    return metadata
