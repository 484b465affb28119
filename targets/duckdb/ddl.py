"""SQL text for target-duckdb: the plain dialect, and its bulk path (read_json over a staging file).
Identifiers are always quoted; values never appear here."""

from __future__ import annotations

from collections.abc import Mapping

from dpone.targets.framework.sql_dialect import SqlDialect

SQL = SqlDialect()  # DuckDB says every loader statement the plain way


def read_json(path: str, columns: Mapping[str, str], max_object_bytes: int) -> str:
    """read_json over a staging file; `max_object_bytes` must cover its longest line."""
    spec = ", ".join(f"{SQL.literal(c)}: {SQL.literal(t)}" for c, t in columns.items())
    return (
        f"read_json({SQL.literal(path)}, format='newline_delimited', columns={{{spec}}}, "
        f"maximum_object_size={int(max_object_bytes)})"
    )


def first_unreadable(source: str, column: str, type_: str, line_column: str) -> str:
    """The first staged row whose value of `column` (read as text) the column's type refuses."""
    col, line = SQL.q(column), SQL.q(line_column)
    return (
        f"SELECT {line}, {col} FROM {source} WHERE {col} IS NOT NULL AND TRY_CAST({col} AS {type_}) IS NULL "
        f"ORDER BY {line} LIMIT 1"
    )
