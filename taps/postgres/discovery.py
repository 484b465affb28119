"""Discovery: schemas, tables and views, with columns, primary keys and row estimates."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from taps.postgres.type_map import ColumnSpec, column_spec

# Temporary tables (relpersistence 't') belong to other sessions and cannot be read.
_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       -- -1 (PostgreSQL 14+) means never analysed; before 14 an unanalysed table shows 0 with 0 pages.
       CASE WHEN c.reltuples < 0 OR (c.reltuples = 0 AND c.relpages = 0
                                     AND current_setting('server_version_num')::int < 140000)
            THEN NULL ELSE c.reltuples::bigint END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND NOT c.relispartition AND c.relpersistence <> 't'
ORDER BY n.nspname, c.relname
"""
_COLUMNS = """
SELECT a.attrelid, a.attname,
       format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid),
                   CASE WHEN t.typbasetype <> 0 THEN t.typtypmod ELSE a.atttypmod END),
       NOT a.attnotnull, bt.typtype,
       CASE WHEN bt.typtype = 'e' THEN ARRAY(SELECT enumlabel::text FROM pg_enum
                                             WHERE enumtypid = bt.oid ORDER BY enumsortorder) END,
       CASE WHEN bt.typcategory = 'A' THEN format_type(bt.typelem, NULL) END
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = coalesce(nullif(t.typbasetype, 0), a.atttypid)
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
_KEYS = """
SELECT i.indrelid, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary AND i.indrelid = ANY(%s)
GROUP BY i.indrelid
"""


@dataclass(slots=True)
class Table:
    schema: str
    name: str
    kind: str  # r table, p partitioned, v view, m materialized view, f foreign
    row_estimate: int | None  # None: unknown (the table was never analysed)
    columns: list[ColumnSpec] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)

    @property
    def stream_id(self) -> str:
        return f"{self.schema}-{self.name}"

    @property
    def qualified(self) -> str:
        return f'"{self.schema.replace(chr(34), chr(34) * 2)}"."{self.name.replace(chr(34), chr(34) * 2)}"'

    @property
    def is_view(self) -> bool:
        return self.kind in ("v", "m", "f")


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def discover(conn: Any, include: list[str], exclude: list[str]) -> list[Table]:
    """Tables and views whose `schema.table` matches `include` (globs) and not `exclude`."""
    tables: dict[int, Table] = {}
    for oid, schema, name, kind, estimate in conn.execute(_TABLES).fetchall():
        full = f"{schema}.{name}"
        if _matches(full, include or ["*.*"]) and not _matches(full, exclude):
            tables[oid] = Table(schema, name, kind, None if estimate is None else int(estimate))
    if not tables:
        return []
    oids = list(tables)
    for oid, name, type_name, nullable, kind, enum, element in conn.execute(_COLUMNS, (oids,)).fetchall():
        tables[oid].columns.append(column_spec(name, type_name, nullable, kind, enum, element))
    for oid, keys in conn.execute(_KEYS, (oids,)).fetchall():
        tables[oid].primary_key = list(keys)
    return list(tables.values())
