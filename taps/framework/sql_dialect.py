"""What a database supplies to the SQL stream base: its connection and catalog, how its server
renders a row as JSON text, its quoting and its predicates.

The stream base (`sql_stream.py`) writes the queries of FULL_TABLE and INCREMENTAL reads once; a
dialect fills in the words. A read selects, per row, the row's JSON text, then a JSON array of the
row's bookmark key, then (optionally) a JSON-null flag, and the dialect's :meth:`SqlDialect.rows`
hands each row back as one line of bytes with those fields separated by 0x1F (PostgreSQL: COPY in
CSV form with that delimiter). The tap frames the row's JSON bytes into a RECORD without decoding.

A dialect may also offer a compiled row path (:meth:`SqlDialect.compiled_rows`): the server then
sends plain column values, and compiled code writes each row's JSON object, whole lines at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dpone.taps.framework.sql_discovery import SqlColumn, SqlTable, TableFilter
from dpone_drivers.sql_names import ANSI, Quoting
from dpone_protocol.config import Redactor
from dpone_protocol.errors import DponeError
from dpone_protocol.key_ranges import KeyRange

FIELD_SEPARATOR = b"\x1f"  # between a row's JSON, its key and its flag; JSON text never holds a raw 0x1F


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Rows of a compiled read, as whole lines."""

    data: bytes  # head + {row} + tail, for each row
    rows: int
    last_key: bytes | None  # JSON array of the last row's key (never a NULL key), if the block had one
    json_nulls: int  # rows holding JSON null in a JSON-typed column (see json_null_test)


class RowBlocks(Protocol):
    def read(self, head: bytes, tail: bytes, max_rows: int, max_bytes: int) -> RowBlock | None:
        """Up to `max_rows` rows (fewer past `max_bytes`, or while the server is slow); None at the end."""


class CompiledRows(Protocol):
    """A read whose rows compiled code renders: what to select, and the rows of the query."""

    select_list: str  # the columns, then the key's fields

    def open(self, conn: Any, sql: str, params: Sequence[Any]) -> contextlib.AbstractContextManager[RowBlocks]:
        """The rows of `sql` (which selects `select_list`); leaving checks the query ended well."""


class SqlDialect:
    """Override the methods that raise; the others hold for most SQL databases."""

    name = "SQL"  # the database, in messages
    quoting: Quoting = ANSI
    placeholder = "%s"  # the driver's parameter marker
    key_ranges = False  # reads one key range of a stream (a partitioned load); see in_key_range
    json_columns = "JSON"  # the words for JSON-typed columns, in the JSON-null warning

    # -- connections and errors ----------------------------------------------------
    def connect(self, config: Mapping[str, Any], redactor: Redactor) -> Any:
        """A new connection in autocommit mode; raise ConfigError or TransientError when it fails."""
        raise NotImplementedError

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """The driver's exception classes, turned into dpone errors by :meth:`error`."""
        raise NotImplementedError

    def error(self, exc: Exception, redactor: Redactor, doing: str) -> DponeError:
        """A driver error as a ConfigError, TransientError or DataError; `doing` says what failed."""
        raise NotImplementedError

    def read_error(self, exc: Exception, table: SqlTable, redactor: Redactor) -> DponeError:
        """A driver error while reading `table` (e.g. name the GRANT a permission error needs)."""
        return self.error(exc, redactor, f"reading {table.schema}.{table.name}")

    # -- catalog -------------------------------------------------------------------
    def tables(self, conn: Any, wanted: TableFilter) -> list[SqlTable]:
        """The tables and views `wanted` lets through, with typed columns and primary keys
        (build them with `sql_discovery.assemble` from the catalog queries' rows)."""
        raise NotImplementedError

    # -- rendering rows ------------------------------------------------------------
    def row_json(self, columns: Sequence[tuple[str, str]]) -> tuple[str, str]:
        """The select expression of a row's JSON text from (expression, property name) pairs, and
        what follows the FROM item to make it (a lateral join; "" when the expression needs none)."""
        raise NotImplementedError

    def key_json(self, expressions: Sequence[str]) -> str:
        """The select expression of a JSON array of the key's values (`[null]` with no expressions)."""
        raise NotImplementedError

    def key_value(self, column: SqlColumn, expression: str) -> str:
        """A key column's value (`expression`) as the key array holds it: bookmarks are read back from
        JSON, so a value JSON would round (a decimal read back as a float) goes as text."""
        return expression

    def compiled_rows(
        self, conn: Any, columns: Sequence[SqlColumn], keys: Sequence[tuple[str, SqlColumn | None]], alias: str
    ) -> tuple[CompiledRows | None, str]:
        """A compiled read of `columns` (over the table alias `alias`) with the bookmark key `keys`
        (each expression with its column when it is one), or None and why not."""
        return None, f"{self.name} has no compiled row path"

    def json_null_test(self, column: SqlColumn, expression: str) -> str | None:
        """A condition true when a JSON-typed column holds JSON null (sent as null, like SQL NULL),
        counted for a warning; None for columns that cannot hold one."""
        return None

    def any_true(self, tests: Sequence[str]) -> str:
        """One select expression, 't' or 'f' in the row's line, true when any test holds."""
        return f"coalesce({' OR '.join(tests)}, false)"

    def rows(self, conn: Any, sql: str, params: Sequence[Any]) -> contextlib.AbstractContextManager[Iterable[Any]]:
        """The result of `sql`, each row as one bytes-like line: its fields joined by FIELD_SEPARATOR.

        The stream's read loop runs over it directly: keep it free of per-row Python work."""
        raise NotImplementedError

    # -- predicates ----------------------------------------------------------------
    def after_key(self, expressions: Sequence[str], values: Sequence[Any]) -> tuple[str, list[Any]]:
        """The condition for rows past a key (resuming a full table), and its parameters.

        A row-value comparison; a database without one (SQL Server) spells it out as
        `a > ? OR (a = ? AND b > ?)`, repeating the values."""
        marks = ", ".join([self.placeholder] * len(expressions))
        return f"({', '.join(expressions)}) > ({marks})", list(values)

    def at_or_after(self, expression: str, value: Any) -> tuple[str, list[Any]]:
        """The condition for rows at or past a bookmark (ties at it are read again, never lost), and its parameters."""
        return f"{expression} >= {self.placeholder}", [value]

    def in_key_range(self, expression: str, key_range: KeyRange) -> tuple[str, list[Any]]:
        """The condition for the rows of one key range (dpone_protocol/key_ranges.py). The bounds are
        text the database reads as the column's type, so a value compares exactly as the column holds it."""
        parts, params = [], []
        if key_range.low is not None:
            parts.append(f"{expression} >= {self.placeholder}")
            params.append(key_range.low)
        if key_range.high is not None:
            parts.append(f"{expression} < {self.placeholder}")
            params.append(key_range.high)
        condition = " AND ".join(parts) or "TRUE"
        if key_range.nulls:
            condition = f"({condition} OR {expression} IS NULL)"
        return condition, params

    def column_sql(self, column: SqlColumn, alias: str) -> str:
        """The column's rendering expression over the table alias `alias`."""
        return self.on_alias(column.expression, column.name, alias)

    def on_alias(self, expression: str, name: str, alias: str) -> str:
        """`expression` over the column `name` (quoted in it) taken from the table alias `alias`."""
        quoted = self.quoting.q(name)
        return expression.replace(quoted, f"{alias}.{quoted}")
