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


def load_json(staging: str, path: str, columns: Mapping[str, str]) -> str:
    spec = ", ".join(f"{literal(c)}: {literal(t)}" for c, t in columns.items())
    return (
        f"INSERT INTO {staging} BY NAME SELECT * FROM read_json({literal(path)}, "
        f"format='newline_delimited', columns={{{spec}}})"
    )


def insert_from(table: str, staging: str, columns: Iterable[str], where: str = "") -> str:
    cols = ", ".join(q(c) for c in columns)
    return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging}{f' WHERE {where}' if where else ''}"


def delete_matching(table: str, staging: str, keys: Iterable[str]) -> str:
    cond = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in keys)
    return f"DELETE FROM {table} AS t USING {staging} AS s WHERE {cond}"
