"""SQL text for target-postgres. Identifiers are always quoted; record values never appear here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

META_COMPUTED = {
    "_sdc_extracted_at": "(s.doc->>'time_extracted')::timestamptz",
    "_sdc_received_at": "now()",
    "_sdc_batched_at": "now()",
    "_sdc_table_version": "(s.doc->>'version')::bigint",
}
# COPY the JSON lines as one text value each: these two bytes never occur in valid JSON.
COPY_OPTIONS = "(FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e')"


def q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{q(schema)}.{q(table)}"


def create_table(
    name: str,
    columns: Mapping[str, str],
    keys: Iterable[str] = (),
    pk_name: str | None = None,
    *,
    unlogged: bool = False,
) -> str:
    cols = [f"{q(c)} {t}" for c, t in columns.items()]
    keys = list(keys)
    if keys:
        constraint = f"CONSTRAINT {q(pk_name)} " if pk_name else ""
        cols.append(f"{constraint}PRIMARY KEY ({', '.join(q(k) for k in keys)})")
    return f"CREATE {'UNLOGGED ' if unlogged else ''}TABLE IF NOT EXISTS {name} ({', '.join(cols)})"


def create_staging(name: str, *, temporary: bool) -> str:
    kind = "TEMPORARY" if temporary else "UNLOGGED"
    return f"CREATE {kind} TABLE IF NOT EXISTS {name} (seq bigint GENERATED ALWAYS AS IDENTITY, doc json NOT NULL)"


def copy_into(staging: str) -> str:
    return f"COPY {staging} (doc) FROM STDIN {COPY_OPTIONS}"


def add_column(table: str, column: str, type_: str) -> str:
    return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {q(column)} {type_}"


def alter_type(table: str, column: str, type_: str) -> str:
    return f"ALTER TABLE {table} ALTER COLUMN {q(column)} TYPE {type_} USING {q(column)}::{type_}"


def source_select(staging: str, columns: Mapping[str, str], keys: list[str], dedupe: bool) -> str:
    """Typed rows out of the staged JSON: one parse per row, in the server."""
    record_cols = {c: t for c, t in columns.items() if c not in META_COMPUTED}
    shape = ", ".join(f"{q(c)} {t}" for c, t in record_cols.items())
    out = [f"r.{q(c)}" for c in record_cols] + [f"{META_COMPUTED[c]} AS {q(c)}" for c in columns if c in META_COMPUTED]
    distinct = f"DISTINCT ON ({', '.join(f'r.{q(k)}' for k in keys)}) " if dedupe and keys else ""
    order = f" ORDER BY {', '.join(f'r.{q(k)}' for k in keys)}, s.seq DESC" if distinct else ""
    return (
        f"SELECT {distinct}{', '.join(out)} FROM {staging} AS s, json_to_record(s.doc->'record') AS r({shape}){order}"
    )


def ordered_columns(columns: Mapping[str, str]) -> list[str]:
    """Record columns first, then computed metadata: the order source_select produces."""
    return [c for c in columns if c not in META_COMPUTED] + [c for c in columns if c in META_COMPUTED]


def insert(table: str, columns: Mapping[str, str], select: str, where: str = "") -> str:
    cols = ", ".join(q(c) for c in ordered_columns(columns))
    body = f"SELECT * FROM ({select}) AS src WHERE {where}" if where else select
    return f"INSERT INTO {table} ({cols}) {body}"


def merge(table: str, columns: Mapping[str, str], keys: list[str], select: str, hard_delete: bool) -> str:
    cols = ordered_columns(columns)
    on = " AND ".join(f"t.{q(k)} = src.{q(k)}" for k in keys)
    updates = ", ".join(f"{q(c)} = src.{q(c)}" for c in cols if c not in keys) or f"{q(keys[0])} = src.{q(keys[0])}"
    values = ", ".join(f"src.{q(c)}" for c in cols)
    names = ", ".join(q(c) for c in cols)
    deleted = "_sdc_deleted_at" in columns and hard_delete
    clauses = []
    if deleted:
        clauses.append("WHEN MATCHED AND src._sdc_deleted_at IS NOT NULL THEN DELETE")
    clauses.append(f"WHEN MATCHED THEN UPDATE SET {updates}")
    clauses.append(
        f"WHEN NOT MATCHED{' AND src._sdc_deleted_at IS NULL' if deleted else ''} "
        f"THEN INSERT ({names}) VALUES ({values})"
    )
    return f"MERGE INTO {table} AS t USING ({select}) AS src ON {on} " + " ".join(clauses)


def swap(schema: str, table: str, shadow: str) -> list[str]:
    return [
        f"DROP TABLE IF EXISTS {qualified(schema, table)}",
        f"ALTER TABLE {qualified(schema, shadow)} RENAME TO {q(table)}",
        f"ALTER INDEX IF EXISTS {qualified(schema, shadow + '_pkey')} RENAME TO {q(table + '_pkey')}",
    ]


def activate_version(table: str, hard: bool) -> str:
    older = "(_sdc_table_version IS NULL OR _sdc_table_version < %s)"
    if hard:
        return f"DELETE FROM {table} WHERE {older}"
    return f"UPDATE {table} SET _sdc_deleted_at = now() WHERE {older} AND _sdc_deleted_at IS NULL"
