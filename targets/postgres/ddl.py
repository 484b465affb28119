"""SQL text for target-postgres. Identifiers are always quoted; record values never appear here."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

MAX_NAME_BYTES = 63  # PostgreSQL silently truncates longer identifiers


def truncated(name: str) -> str:
    """The name PostgreSQL itself makes of a longer identifier: how earlier versions stored long names."""
    return name.encode()[:MAX_NAME_BYTES].decode("utf-8", "ignore")


def pg_name(base: str, suffix: str = "") -> str:
    """A name within the limit: a longer one is cut and gets 8 hex digits of the SHA-1 of the whole
    name, so two names sharing their first 63 bytes never become one table, column or key."""
    if len((base + suffix).encode()) <= MAX_NAME_BYTES:
        return base + suffix
    digest = hashlib.sha1(base.encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
    room = MAX_NAME_BYTES - len(suffix.encode()) - len(digest) - 1
    cut = base.encode()[:room].decode("utf-8", "ignore")
    return f"{cut}_{digest}{suffix}"


def q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string literal for a statement that takes no parameters (COMMENT); standard_conforming_strings is on."""
    return "'" + text.replace("'", "''") + "'"


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


def copy_into(staging: str, columns: Iterable[str]) -> str:
    return f"COPY {staging} ({', '.join(q(c) for c in columns)}) FROM STDIN"


def add_column(table: str, column: str, type_: str) -> str:
    return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {q(column)} {type_}"


def alter_type(table: str, column: str, type_: str) -> str:
    return f"ALTER TABLE {table} ALTER COLUMN {q(column)} TYPE {type_} USING {q(column)}::{type_}"


def drop_not_null(table: str, column: str) -> str:
    return f"ALTER TABLE {table} ALTER COLUMN {q(column)} DROP NOT NULL"


def insert(table: str, staging: str, columns: Iterable[str], where: str = "") -> str:
    cols = ", ".join(q(c) for c in columns)
    return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging}{f' WHERE {where}' if where else ''}"


# Whether a unique index covers exactly the key columns (sorted names as a text[] parameter).
UNIQUE_ON_KEYS = """
SELECT EXISTS (
  SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = %s AND c.relname = %s AND i.indisunique
    AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey)) = %s::text[])
"""


def has_deletes(staging: str) -> str:
    return f"SELECT EXISTS (SELECT 1 FROM {staging} WHERE _sdc_deleted_at IS NOT NULL)"


def keys_overlap(table: str, staging: str, keys: list[str]) -> str:
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in keys)
    return f"SELECT EXISTS (SELECT 1 FROM {staging} AS s JOIN {table} AS t ON {on})"


def dedupe_staging(staging: str, keys: list[str]) -> str:
    """Keep the last row per key in a staging table filled by one COPY (its ctid order is arrival order)."""
    same = " AND ".join(f"a.{q(k)} = b.{q(k)}" for k in keys)
    return f"DELETE FROM {staging} AS a USING {staging} AS b WHERE {same} AND a.ctid < b.ctid"


def merge(table: str, staging: str, columns: list[str], keys: list[str], hard_delete: bool) -> str:
    """One statement: update matched keys, insert new ones; CDC deletes as hard deletes on request."""
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in keys)
    updates = ", ".join(f"{q(c)} = s.{q(c)}" for c in columns if c not in keys) or f"{q(keys[0])} = s.{q(keys[0])}"
    names = ", ".join(q(c) for c in columns)
    values = ", ".join(f"s.{q(c)}" for c in columns)
    deleted = hard_delete and "_sdc_deleted_at" in columns
    clauses = []
    if deleted:
        clauses.append("WHEN MATCHED AND s._sdc_deleted_at IS NOT NULL THEN DELETE")
    clauses.append(f"WHEN MATCHED THEN UPDATE SET {updates}")
    clauses.append(
        f"WHEN NOT MATCHED{' AND s._sdc_deleted_at IS NULL' if deleted else ''} THEN INSERT ({names}) VALUES ({values})"
    )
    return f"MERGE INTO {table} AS t USING {staging} AS s ON {on} " + " ".join(clauses)


def swap(schema: str, table: str, shadow: str) -> list[str]:
    return [
        f"DROP TABLE IF EXISTS {qualified(schema, table)}",
        f"ALTER TABLE {qualified(schema, shadow)} RENAME TO {q(table)}",
        f"ALTER INDEX IF EXISTS {qualified(schema, pg_name(shadow, '_pkey'))} RENAME TO {q(pg_name(table, '_pkey'))}",
    ]


def activate_version(table: str, hard: bool) -> str:
    older = "(_sdc_table_version IS NULL OR _sdc_table_version < %s)"
    if hard:
        return f"DELETE FROM {table} WHERE {older}"
    return f"UPDATE {table} SET _sdc_deleted_at = now() WHERE {older} AND _sdc_deleted_at IS NULL"
