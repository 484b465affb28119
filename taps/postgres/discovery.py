"""PostgreSQL's catalog queries: tables and views (relkind r, p, v, m, f), columns, primary keys, row estimates."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from dpone.taps.framework.sql_discovery import SqlTable, TableFilter, assemble
from dpone.taps.postgres.type_map import column_spec
from dpone_drivers.sql_names import ANSI

_VIEWS = ("v", "m", "f")  # relkind of views, materialized views and foreign tables: no primary key

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


def tables(conn: Any, wanted: TableFilter) -> list[SqlTable]:
    """Tables and views `wanted` lets through, with typed columns and primary keys."""
    found: dict[Hashable, SqlTable] = {}
    for oid, schema, name, kind, estimate in conn.execute(_TABLES).fetchall():
        if wanted.wants(schema, name):
            row_estimate = None if estimate is None else int(estimate)
            found[oid] = SqlTable(schema, name, kind, row_estimate, ANSI.qualified(schema, name), kind in _VIEWS)
    if not found:
        return []
    oids = list(found)
    return assemble(
        found, conn.execute(_COLUMNS, (oids,)).fetchall(), conn.execute(_KEYS, (oids,)).fetchall(), column_spec
    )


def discover(conn: Any, include: list[str], exclude: list[str]) -> list[SqlTable]:
    """Tables and views whose `schema.table` matches `include` (globs) and not `exclude`."""
    return tables(conn, TableFilter(include, exclude))
