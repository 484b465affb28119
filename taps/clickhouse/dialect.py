"""ClickHouse as a SQL stream source: the server concatenates each row's JSON, streamed as TabSeparated.

Each column renders its own JSON text (type_map), the row is one concat() of them, and the key one
JSON array of the key columns' texts. The result comes through clickhouse-connect's raw_stream in
TabSeparated form and reader.py turns it into the base's lines, `<row JSON>\\x1f<key JSON>`, a
megabyte at a time. Bookmarks come back as server-side parameters read in the column's own type,
so a decimal, a 128-bit integer or a date-time compares exactly.

The dialect bound to a table (`for_table`) knows its columns: the base hands key hooks only the
columns' SQL, and a key is rendered and compared by its type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dpone.taps.clickhouse.discovery import ClickHouseSource, tables
from dpone.taps.clickhouse.reader import ChunkReader, ConnectionLost, ServerError, tsv_lines
from dpone.taps.clickhouse.type_map import SERVER_JSON, STRICT_UTF8, VALUE, ClickHouseColumn, json_key
from dpone.taps.framework.sql_dialect import SqlDialect
from dpone.taps.framework.sql_discovery import SqlColumn, SqlTable, TableFilter
from dpone.taps.framework.sql_stream import SRC
from dpone_drivers import clickhouse
from dpone_drivers.sql_names import BACKTICKS
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError, TransientError

# Each row is one line ending in \n, whatever the profile says.
TSV_SETTINGS = "output_format_tsv_crlf_end_of_line = 0"
# How the server writes what its JSON writer renders (JSON, Dynamic and Variant columns), so no
# profile or server default changes the output. Only queries with such columns send them: a user
# with readonly=1 may not change settings, and may read every other table.
RENDER_SETTINGS = (
    f"{TSV_SETTINGS}, "
    "output_format_json_quote_64bit_integers = 0, "
    "output_format_json_quote_64bit_floats = 0, "
    "output_format_json_quote_decimals = 1, "
    "output_format_decimal_trailing_zeros = 1, "
    "output_format_json_quote_denormals = 1, "
    "output_format_json_escape_forward_slashes = 0, "
    "output_format_json_named_tuples_as_objects = 1, "
    "date_time_output_format = 'iso'"
)
# The server repeats the query and the failing function in its messages; the first clause is enough.
_READONLY = 164
# Engines whose rows a merge replaces, collapses or sums: read with FINAL.
_MERGING = frozenset(
    f"{kind}MergeTree" for kind in ("Replacing", "Collapsing", "VersionedCollapsing", "Summing", "Aggregating")
)


def settings_for(sql: str) -> str:
    """The SETTINGS a read query carries."""
    return RENDER_SETTINGS if SERVER_JSON in sql else TSV_SETTINGS


def _param(i: int) -> str:
    return f"{{dpone_p{i}:String}}"


def bookmark_text(value: Any) -> str:
    """A bookmark value as the text the server reads back in the column's type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class ClickHouseDialect(SqlDialect):
    name = "ClickHouse"
    quoting = BACKTICKS

    def __init__(self, table: SqlTable | None = None) -> None:
        self.table = table
        # The base names a key column as SRC.`name`; the bound dialect finds its type by that text.
        columns = table.columns if table is not None else []
        self.by_ref = {f"{SRC}.{self.quoting.q(c.name)}": c for c in columns if isinstance(c, ClickHouseColumn)}

    def for_table(self, table: SqlTable) -> ClickHouseDialect:
        return ClickHouseDialect(table)

    # -- connections and errors ----------------------------------------------------
    def connect(self, config: Mapping[str, Any], redactor: Redactor) -> ClickHouseSource:
        client = clickhouse.connect(config, redactor)  # a locked embedded directory is named there
        return ClickHouseSource(client, clickhouse.database_of(config), str(config.get("invalid_utf8") or STRICT_UTF8))

    def driver_errors(self) -> tuple[type[Exception], ...]:
        return (*clickhouse.driver_errors(), ServerError, ConnectionLost)

    def error(self, exc: Exception, redactor: Redactor, doing: str) -> DponeError:
        return clickhouse.classify(exc, redactor, doing)

    def read_error(self, exc: Exception, table: SqlTable, redactor: Redactor) -> DponeError:
        doing = f"reading {table.schema}.{table.name}"
        if isinstance(exc, ConnectionLost):
            return TransientError(f"{doing}: the connection was lost: {redactor(str(exc))}")
        found = clickhouse.classify(exc, redactor, doing)
        if clickhouse.error_code(exc) == _READONLY:
            return ConfigError(
                f"{found} (tables with JSON, Dynamic or Variant columns are read with output format settings: "
                "the user needs readonly=2 or 0)"
            )
        return found

    # -- catalog -------------------------------------------------------------------
    def tables(self, conn: ClickHouseSource, wanted: TableFilter) -> list[SqlTable]:
        return tables(conn, wanted)

    # -- rendering rows ------------------------------------------------------------
    @property
    def final(self) -> str:
        """` FINAL` for a table whose engine merges rows (ReplacingMergeTree...): its rows as of now,
        one per key, without the superseded versions and deleted rows a merge has not removed yet."""
        engine = self.table.kind if self.table is not None else ""  # the engine, as discovery reads it
        return " FINAL" if engine.endswith("MergeTree") and engine.removeprefix("Replicated") in _MERGING else ""

    def row_json(self, columns: Sequence[tuple[str, str]]) -> tuple[str, str]:
        if not columns:
            return "'{}'", self.final
        parts = ["'{'"]
        for i, (expression, name) in enumerate(columns):
            parts += [json_key(name, "," if i else ""), expression]
        return f"concat({', '.join(parts)}, '}}')", self.final

    def key_json(self, expressions: Sequence[str]) -> str:
        if not expressions:
            return "'[null]'"
        parts: list[str] = []
        for expression in expressions:
            column = self.by_ref.get(expression)
            rendered = self.column_sql(column, SRC, column.key_expression) if column else f"toJSONString({expression})"
            parts += ["','", rendered] if parts else [rendered]
        return f"concat('[', {', '.join(parts)}, ']')"

    def column_sql(self, column: SqlColumn, alias: str, expression: str | None = None) -> str:
        quoted = self.quoting.q(column.name)
        return (expression or column.expression).replace(quoted, f"{alias}.{quoted}")

    @contextlib.contextmanager
    def rows(self, conn: ClickHouseSource, sql: str, params: Sequence[Any]) -> Iterator[Iterable[Any]]:
        bound = {f"dpone_p{i}": bookmark_text(v) for i, v in enumerate(params)}
        stream = conn.client.raw_stream(f"{sql} SETTINGS {settings_for(sql)}", bound or None, fmt="TabSeparated")
        try:
            reader = ChunkReader(stream, clickhouse.driver_errors())
            try:
                yield tsv_lines(reader.chunks())
            finally:
                reader.close()  # before the stream closes under its thread
        finally:
            stream.close()

    # -- predicates ----------------------------------------------------------------
    def _value(self, expression: str, i: int) -> str:
        """Parameter i read in the type of the column `expression` names."""
        column = self.by_ref.get(expression)
        if column is None or not column.bookmark_sql:
            return _param(i)
        return column.bookmark_sql.replace(VALUE, _param(i), 1)

    def at_or_after(self, expression: str, value: Any) -> tuple[str, list[Any]]:
        return f"{expression} >= {self._value(expression, 0)}", [value]

    def after_key(self, expressions: Sequence[str], values: Sequence[Any]) -> tuple[str, list[Any]]:
        """Rows past the key; also the rows at it when the key is not unique there.

        ClickHouse does not enforce a unique key: when several rows share the last key sent, the
        read may have stopped among them, so they are all sent again (at least once, never lost)."""
        keys = f"({', '.join(expressions)})"
        marks = f"({', '.join(self._value(e, i) for i, e in enumerate(expressions))})"
        if self.table is None:
            return f"{keys} > {marks}", list(values)
        plain = f"({', '.join(e.removeprefix(SRC + '.') for e in expressions)})"
        repeated = f"(SELECT count() FROM {self.table.qualified}{self.final} WHERE {plain} = {marks}) > 1"
        return f"{keys} > {marks} OR ({keys} = {marks} AND {repeated})", list(values)


CLICKHOUSE = ClickHouseDialect()
