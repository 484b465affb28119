"""SQL Server's catalog queries: tables and views (sys.tables, sys.views), their columns typed from
sys.columns and sys.types, primary keys from sys.indexes, row counts from sys.partitions.

sys.partitions, unlike sys.dm_db_partition_stats, needs no VIEW DATABASE STATE: any user who may see
a table sees its count. The schemas SQL Server keeps for itself (sys, INFORMATION_SCHEMA) and CDC's
change tables (schema cdc) are never streams.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from dpone.taps.framework.sql_discovery import SqlTable, TableFilter, assemble
from dpone.taps.mssql.type_map import MssqlColumn, column_spec
from dpone_drivers.sql_names import BRACKETS

TABLE = "table"
VIEW = "view"

_TABLES = """
SELECT t.object_id, s.name, t.name, 'table',
       (SELECT SUM(p.rows) FROM sys.partitions AS p WHERE p.object_id = t.object_id AND p.index_id IN (0, 1))
FROM sys.tables AS t JOIN sys.schemas AS s ON s.schema_id = t.schema_id
WHERE t.is_ms_shipped = 0 AND s.name NOT IN ('sys', 'INFORMATION_SCHEMA', 'cdc')
UNION ALL
SELECT v.object_id, s.name, v.name, 'view', NULL
FROM sys.views AS v JOIN sys.schemas AS s ON s.schema_id = v.schema_id
WHERE v.is_ms_shipped = 0 AND s.name NOT IN ('sys', 'INFORMATION_SCHEMA', 'cdc')
ORDER BY 2, 3
"""
# An alias type (CREATE TYPE ... FROM varchar(20)) is typed as its base type; CLR types are marked.
_COLUMNS = """
SELECT c.object_id, c.name,
       CASE WHEN ty.is_user_defined = 1 AND ty.is_assembly_type = 0 THEN TYPE_NAME(ty.system_type_id) ELSE ty.name END,
       c.max_length, c.precision, c.scale, c.is_nullable, ty.is_assembly_type
FROM sys.columns AS c
JOIN sys.objects AS o ON o.object_id = c.object_id
JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0
ORDER BY c.object_id, c.column_id
"""
_KEYS = """
SELECT i.object_id, c.name
FROM sys.indexes AS i
JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE i.is_primary_key = 1
ORDER BY i.object_id, ic.key_ordinal
"""


def tables(conn: Any, wanted: TableFilter) -> list[SqlTable]:
    """Tables and views `wanted` lets through, with typed columns and primary keys."""
    found: dict[Hashable, SqlTable] = {}
    for object_id, schema, name, kind, rows in conn.execute(_TABLES).fetchall():
        if wanted.wants(schema, name):
            estimate = None if rows is None else int(rows)
            found[object_id] = SqlTable(schema, name, kind, estimate, BRACKETS.qualified(schema, name), kind == VIEW)
    if not found:
        return []
    columns = [
        (object_id, name, column_spec(name, type_name, length, precision, scale, bool(nullable), bool(clr)))
        for object_id, name, type_name, length, precision, scale, nullable, clr in conn.execute(_COLUMNS).fetchall()
    ]
    keys: dict[Hashable, list[str]] = {}
    for object_id, name in conn.execute(_KEYS).fetchall():
        keys.setdefault(object_id, []).append(name)
    return assemble(found, columns, list(keys.items()), _as_is)


def _as_is(name: str, column: MssqlColumn) -> MssqlColumn:
    return column
