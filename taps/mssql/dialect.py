"""SQL Server as a SQL stream source: FOR JSON rows (render.py) fetched over ODBC in blocks.

Each result row holds the row's JSON text and the key's JSON array as two nvarchar values; `rows`
joins them with 0x1F into one line of UTF-8 bytes, which is all the Python a row costs. JSON text
never holds a raw 0x1F (FOR JSON and STRING_ESCAPE escape control characters).

The dialect bound to a table (`for_table`) knows its columns: the stream base hands the hooks only
column SQL and names, and a column renders, keys and compares by its own type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dpone.taps.framework.sql_dialect import SqlDialect
from dpone.taps.framework.sql_discovery import SqlColumn, SqlTable, TableFilter
from dpone.taps.framework.sql_stream import SRC
from dpone.taps.mssql import discovery, grants, render
from dpone.taps.mssql.type_map import MssqlColumn
from dpone_drivers import mssql
from dpone_drivers.sql_names import BRACKETS
from dpone_protocol.config import Redactor
from dpone_protocol.errors import DponeError

APPLICATION_NAME = "dpone-tap-mssql"
FETCH_ROWS = 2_000  # rows per fetchmany: one driver round of SQLFetch/SQLGetData per row either way
_SEPARATOR = "\x1f"


class MssqlDialect(SqlDialect):
    name = "SQL Server"
    quoting = BRACKETS
    placeholder = "?"

    def __init__(self, table: SqlTable | None = None) -> None:
        self.table = table
        columns = [c for c in (table.columns if table is not None else []) if isinstance(c, MssqlColumn)]
        self.by_name = {c.name: c for c in columns}
        # The base names a column as SRC.[name]; the bound dialect finds its type by that text.
        self.by_ref = {c.ref(SRC): c for c in columns}

    def for_table(self, table: SqlTable) -> MssqlDialect:
        return MssqlDialect(table)

    # -- connections and errors ----------------------------------------------------
    def connect(self, config: Mapping[str, Any], redactor: Redactor) -> Any:
        return mssql.connect(config, redactor, APPLICATION_NAME, autocommit=True)

    def driver_errors(self) -> tuple[type[Exception], ...]:
        return mssql.driver_errors()

    def error(self, exc: Exception, redactor: Redactor, doing: str) -> DponeError:
        return mssql.classify(exc, redactor, doing)

    def read_error(self, exc: Exception, table: SqlTable, redactor: Redactor) -> DponeError:
        doing = f"reading {table.schema}.{table.name}"
        return grants.classified(exc, redactor, doing, grants.select_grant(table.qualified))

    # -- catalog -------------------------------------------------------------------
    def tables(self, conn: Any, wanted: TableFilter) -> list[SqlTable]:
        return discovery.tables(conn, wanted)

    # -- rendering rows ------------------------------------------------------------
    def column_sql(self, column: SqlColumn, alias: str) -> str:
        if isinstance(column, MssqlColumn):
            return column.value_at(alias)
        return super().column_sql(column, alias)

    def row_json(self, columns: Sequence[tuple[str, str]]) -> tuple[str, str]:
        # Columns of the bound table, as the base renders them on SRC, may be spliced in; others go as given.
        known = [c for expression, name in columns if (c := self.by_name.get(name)) and expression == c.value_at(SRC)]
        if len(known) == len(columns):
            return render.columns_json(known, SRC)
        return render.row_json(columns, [])

    def key_json(self, expressions: Sequence[str]) -> str:
        return render.key_json([self.key_text(e) for e in expressions])

    def key_text(self, expression: str) -> str:
        """The JSON text of a key part: a column's own, or an integer (what the base's expressions are)."""
        column = self.by_ref.get(expression)
        return column.key_at(SRC) if column is not None else f"CONVERT(VARCHAR(20), {expression})"

    @contextlib.contextmanager
    def rows(self, conn: Any, sql: str, params: Sequence[Any]) -> Iterator[Iterable[bytes]]:
        cursor = conn.cursor()
        try:
            cursor.execute(sql, *params)
            yield _lines(cursor)
        finally:
            cursor.close()

    # -- predicates ----------------------------------------------------------------
    def param(self, expression: str) -> str:
        """A parameter read back in the type of the column `expression` names."""
        column = self.by_ref.get(expression)
        return column.param if column is not None else "?"

    def after_key(self, expressions: Sequence[str], values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`a > ? OR (a = ? AND b > ?) OR ...`: SQL Server has no row-value comparison."""
        terms: list[str] = []
        params: list[Any] = []
        for i, expression in enumerate(expressions):
            equal = [f"{e} = {self.param(e)}" for e in expressions[:i]]
            terms.append(" AND ".join([*equal, f"{expression} > {self.param(expression)}"]))
            params += [*values[:i], values[i]]
        condition = " OR ".join(t if i == 0 else f"({t})" for i, t in enumerate(terms))
        return f"({condition})", params

    def at_or_after(self, expression: str, value: Any) -> tuple[str, list[Any]]:
        return f"{expression} >= {self.param(expression)}", [value]


def _lines(cursor: Any) -> Iterator[bytes]:
    """Each result row's fields joined by 0x1F, as UTF-8, fetched FETCH_ROWS at a time."""
    while True:
        batch = cursor.fetchmany(FETCH_ROWS)
        if not batch:
            return
        yield from [_SEPARATOR.join(row).encode() for row in batch]


MSSQL = MssqlDialect()
