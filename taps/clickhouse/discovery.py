"""ClickHouse's catalog queries: tables and views from system.tables, columns from system.columns.

A stream's key is the table's sorting key (ORDER BY) when every part of it is a plain column of a
type a bookmark can hold: it is what a ReplacingMergeTree deduplicates on, and reading in its order
is the table's own order. Tables whose engine consumes what is read (Kafka, RabbitMQ, ...) and the
hidden `.inner` tables of materialized views are never listed, nor target-clickhouse's own tables
(staging, shadows) and columns (a ReplacingMergeTree's version and delete flag: the tap reads such
tables with FINAL, which applies them).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from dpone.taps.clickhouse.type_map import STRICT_UTF8, ClickHouseColumn, UnsupportedType, column_spec
from dpone.taps.clickhouse.type_names import split_top, unquote_name
from dpone.taps.framework.sql_discovery import SqlTable, TableFilter, assemble
from dpone_drivers.sql_names import BACKTICKS
from dpone_protocol.errors import ConfigError

log = logging.getLogger(__name__)

SYSTEM_DATABASES = ("system", "INFORMATION_SCHEMA", "information_schema")
# Reading these takes the messages away from every other consumer.
CONSUMING_ENGINES = ("Kafka", "RabbitMQ", "NATS", "FileLog", "S3Queue", "AzureQueue")
VIEW_ENGINES = ("View", "MaterializedView", "LiveView", "WindowView")

_TABLES = """
SELECT database, name, engine, total_rows, sorting_key
FROM system.tables
WHERE NOT is_temporary
  AND database NOT IN {system:Array(String)}
  AND engine NOT IN {consuming:Array(String)}
  AND NOT startsWith(name, '.inner')
  AND NOT startsWith(name, '_dpone_') AND NOT endsWith(name, '__dpone_new')
ORDER BY database, name
"""
# EPHEMERAL columns exist only for INSERT: a SELECT cannot read them.
_COLUMNS = """
SELECT database, table, name, type
FROM system.columns
WHERE database IN {databases:Array(String)} AND default_kind != 'EPHEMERAL'
  AND name NOT IN ('_dpone_version', '_dpone_is_deleted')
ORDER BY database, table, position
"""


@dataclass(frozen=True, slots=True)
class ClickHouseSource:
    """The tap's connection: the client, and what the settings say about reading through it."""

    client: Any
    database: str  # whose tables are read when `include` is not set
    utf8: str = STRICT_UTF8


def tables(source: ClickHouseSource, wanted: TableFilter) -> list[SqlTable]:
    """Tables and views `wanted` lets through (by default every one of the configured database)."""
    client = source.client
    if not wanted.include:
        names = [row[0] for row in client.query("SELECT name FROM system.databases ORDER BY name").result_rows]
        if source.database not in names:
            listed = ", ".join(n for n in names if n not in SYSTEM_DATABASES) or "none but the system ones"
            raise ConfigError(
                f"database {source.database!r} does not exist on the server (it has: {listed}); "
                "fix 'database', or list the tables to read in 'include'"
            )
        wanted = TableFilter([f"{source.database}.*"], wanted.exclude)
    found: dict[Hashable, SqlTable] = {}
    sorting: dict[Hashable, str] = {}
    params = {"system": list(SYSTEM_DATABASES), "consuming": list(CONSUMING_ENGINES)}
    for database, name, engine, total_rows, sorting_key in client.query(_TABLES, parameters=params).result_rows:
        if wanted.wants(database, name):
            qualified = BACKTICKS.qualified(database, name)
            rows = None if total_rows is None else int(total_rows)
            found[(database, name)] = SqlTable(database, name, engine, rows, qualified, engine in VIEW_ENGINES)
            sorting[(database, name)] = sorting_key or ""
    if not found:
        return []
    databases = sorted({table.schema for table in found.values()})
    columns = []
    for database, table, name, type_text in client.query(_COLUMNS, parameters={"databases": databases}).result_rows:
        if (database, table) in found:
            try:
                columns.append(((database, table), name, column_spec(name, type_text, source.utf8)))
            except UnsupportedType:
                log.warning(
                    "column %s.%s.%s (%s) left out: it holds aggregate states", database, table, name, type_text
                )
    assembled = assemble(found, columns, [], _as_is)
    for table_id, table in found.items():
        table.primary_key = _key(table, sorting[table_id])
    return assembled


def _as_is(name: str, column: ClickHouseColumn) -> ClickHouseColumn:
    return column


def _unwrapped(text: str) -> str:
    """`(id)` -> `id`, `((id), x)` -> `(id), x`: ClickHouse writes ORDER BY (a, b) with its parentheses."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    """No parenthesis closes one it did not open (names with parentheses in them are not keys anyway)."""
    depth = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        if depth < 0:
            return False
    return depth == 0


def _key(table: SqlTable, sorting_key: str) -> list[str]:
    """The sorting key's columns; none when a part of it is an expression or of a type no bookmark holds."""
    if table.is_view or sorting_key in ("", "tuple()"):
        return []
    by_name = {c.name: c for c in table.columns if isinstance(c, ClickHouseColumn)}
    key = []
    for part in split_top(_unwrapped(sorting_key)):
        name = unquote_name(_unwrapped(part))
        column = by_name.get(name) if name is not None else None
        if column is None or not column.bookmark_sql:
            log.info(
                "table %s.%s: sorting key (%s) is not a list of plain columns; the stream has no key properties",
                table.schema,
                table.name,
                sorting_key,
            )
            return []
        key.append(column.name)
    return key
