"""A ClickHouse table as a SQL stream: the base's reads, with the dialect bound to the table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dpone.taps.clickhouse.dialect import ClickHouseDialect
from dpone.taps.framework.sql_discovery import SqlTable
from dpone.taps.framework.sql_stream import SqlStream

if TYPE_CHECKING:
    from dpone.taps.framework.sql_tap import SqlTap


class ClickHouseStream(SqlStream):
    def __init__(self, table: SqlTable, tap: SqlTap, dialect: ClickHouseDialect) -> None:
        super().__init__(table, tap)
        # Keys are rendered and compared by their column's type, which only the table knows.
        self.dialect = dialect.for_table(table)
