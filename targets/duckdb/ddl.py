"""SQL text for target-duckdb. Identifiers are always quoted; values never appear here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{q(schema)}.{q(table)}"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_table(name: str, columns: Mapping[str, str], *, temp: bool = False) -> str:
    cols = ", ".join(f"{q(c)} {t}" for c, t in columns.items())
    return f"CREATE {'TEMP ' if temp else ''}TABLE {name} ({cols})"


def add_column(table: str, column: str, type_: str) -> str:
    return f"ALTER TABLE {table} ADD COLUMN {q(column)} {type_}"


def alter_type(table: str, column: str, type_: str) -> str:
    return f"ALTER TABLE {table} ALTER COLUMN {q(column)} TYPE {type_}"


def drop_not_null(table: str, column: str) -> str:
    return f"ALTER TABLE {table} ALTER COLUMN {q(column)} DROP NOT NULL"


def read_json(path: str, columns: Mapping[str, str], max_object_bytes: int) -> str:
    """read_json over a staging file; `max_object_bytes` must cover its longest line."""
    spec = ", ".join(f"{literal(c)}: {literal(t)}" for c, t in columns.items())
    return (
        f"read_json({literal(path)}, format='newline_delimited', columns={{{spec}}}, "
        f"maximum_object_size={int(max_object_bytes)})"
    )


def load_json(staging: str, source: str, columns: Iterable[str]) -> str:
    cols = ", ".join(q(c) for c in columns)
    return f"INSERT INTO {staging} ({cols}) SELECT {cols} FROM {source}"


def first_unreadable(source: str, column: str, type_: str, line_column: str) -> str:
    """The first staged row whose value of `column` (read as text) the column's type refuses."""
    col = q(column)
    return (
        f"SELECT {q(line_column)}, {col} FROM {source} WHERE {col} IS NOT NULL AND TRY_CAST({col} AS {type_}) IS NULL "
        f"ORDER BY {q(line_column)} LIMIT 1"
    )


def insert_from(table: str, staging: str, columns: Iterable[str], where: str = "") -> str:
    cols = ", ".join(q(c) for c in columns)
    return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging}{f' WHERE {where}' if where else ''}"


def delete_matching(table: str, staging: str, keys: Iterable[str]) -> str:
    cond = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in keys)
    return f"DELETE FROM {table} AS t USING {staging} AS s WHERE {cond}"
