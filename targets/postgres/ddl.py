"""SQL text for target-postgres: where PostgreSQL's words differ from the plain dialect, and the
statements only its loader runs. Identifiers are always quoted; record values never appear here."""

from __future__ import annotations

from collections.abc import Iterable

from dpone.targets.framework.sql_dialect import DELETED_AT, SqlDialect

MAX_NAME_BYTES = 63  # PostgreSQL silently truncates longer identifiers
LOAD_TIME_COLUMNS = ("_sdc_received_at", "_sdc_batched_at")


class PostgresSql(SqlDialect):
    max_name_bytes = MAX_NAME_BYTES
    create_if_missing = True  # two streams mapped to one table may both plan its creation
    has_merge = True  # PostgreSQL 15

    def primary_key(self, keys: list[str], key_name: str | None) -> str | None:
        # Named explicitly: PostgreSQL's own <table>_pkey would be cut silently for a long name.
        if not keys:
            return None
        constraint = f"CONSTRAINT {self.q(key_name)} " if key_name else ""
        return f"{constraint}PRIMARY KEY ({self.column_list(keys)})"

    def column_def(self, name: str, type_: str, *, not_null: bool = False) -> str:
        # The load times are the loading transaction's start: a COPY (into staging, or straight into a
        # table this target created) leaves them out, and no row carries them.
        default = " DEFAULT now()" if name in LOAD_TIME_COLUMNS else ""
        return super().column_def(name, type_, not_null=not_null) + default

    def add_column(self, table: str, column: str, type_: str) -> str:
        return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {self.q(column)} {type_}"

    def alter_type(self, table: str, column: str, type_: str) -> str:
        return f"{super().alter_type(table, column, type_)} USING {self.q(column)}::{type_}"

    def swap(self, schema: str, table: str, shadow: str) -> list[str]:
        # The key index follows its table's name, so the next refresh's shadow can take its own.
        old_key, new_key = self.fit_name(shadow, "_pkey"), self.fit_name(table, "_pkey")
        return [
            *super().swap(schema, table, shadow),
            f"ALTER INDEX IF EXISTS {self.qualified(schema, old_key)} RENAME TO {self.q(new_key)}",
        ]


SQL = PostgresSql()
pg_name = SQL.fit_name  # a table, column or key name within PostgreSQL's 63 bytes


def truncated(name: str) -> str:
    """The name PostgreSQL itself makes of a longer identifier: how earlier versions stored long names."""
    return name.encode()[:MAX_NAME_BYTES].decode("utf-8", "ignore")


def copy_into(staging: str, columns: Iterable[str]) -> str:
    return f"COPY {staging} ({SQL.column_list(columns)}) FROM STDIN"


# Whether a unique index covers exactly the key columns (sorted names as a text[] parameter).
UNIQUE_ON_KEYS = """
SELECT EXISTS (
  SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = %s AND c.relname = %s AND i.indisunique
    AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey)) = %s::text[])
"""


def has_deletes(staging: str) -> str:
    return f"SELECT EXISTS (SELECT 1 FROM {staging} WHERE {SQL.q(DELETED_AT)} IS NOT NULL)"


def keys_overlap(table: str, staging: str, keys: list[str]) -> str:
    on = " AND ".join(f"t.{SQL.q(k)} = s.{SQL.q(k)}" for k in keys)
    return f"SELECT EXISTS (SELECT 1 FROM {staging} AS s JOIN {table} AS t ON {on})"


def dedupe_staging(staging: str, keys: list[str]) -> str:
    """Keep the last row per key in a staging table filled by one COPY (its ctid order is arrival order)."""
    same = " AND ".join(f"a.{SQL.q(k)} = b.{SQL.q(k)}" for k in keys)
    return f"DELETE FROM {staging} AS a USING {staging} AS b WHERE {same} AND a.ctid < b.ctid"
