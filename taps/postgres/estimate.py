"""Rows per selected stream as PostgreSQL's statistics tell (`pg_class.reltuples`), without a scan.

The figure is what the last ANALYZE (or autovacuum) saw, so it can be stale; a table never
analysed has none (reltuples -1 from PostgreSQL 14 on; 0 rows in 0 pages before that), and a view
keeps no statistics: both are unknown (None), never 0. A partitioned table is the sum of its leaf
partitions, known only when every one of them has been analysed.
"""

from __future__ import annotations

from dpone.taps.framework.estimates import Table, per_stream, selected_tables
from dpone.taps.framework.sql_tap import SqlTap
from dpone_protocol.catalog import Catalog

_ESTIMATES = """
SELECT w.schema_name, w.table_name,
       CASE WHEN c.relkind = 'p' THEN (
                SELECT CASE WHEN bool_and(p.reltuples >= 0) THEN sum(p.reltuples)::bigint END
                FROM pg_partition_tree(c.oid) AS t JOIN pg_class AS p ON p.oid = t.relid
                WHERE t.isleaf)
            WHEN c.relkind = 'v' THEN NULL
            WHEN c.reltuples < 0 OR (c.reltuples = 0 AND c.relpages = 0
                                     AND current_setting('server_version_num')::int < 140000) THEN NULL
            ELSE c.reltuples::bigint END
FROM unnest(%s::text[], %s::text[]) AS w(schema_name, table_name)
JOIN pg_namespace AS n ON n.nspname = w.schema_name
JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = w.table_name
"""


def estimate_rows(tap: SqlTap, catalog: Catalog | None) -> dict[str, int | None]:
    """Stream -> estimated rows (None: unknown) for each selected stream of `catalog`."""
    tables = selected_tables(catalog)
    wanted = {t for t in tables.values() if t is not None}
    found: dict[Table, int | None] = {}
    if wanted:
        schemas, names = zip(*sorted(wanted), strict=True)
        try:
            rows = tap.conn.execute(_ESTIMATES, (list(schemas), list(names))).fetchall()
        except tap.dialect.driver_errors() as exc:
            raise tap.dialect.error(exc, tap.redactor, "reading row estimates (pg_class)") from None
        found = {(schema, name): None if n is None else int(n) for schema, name, n in rows}
    return per_stream(tables, found)
