"""Staging-first loads into SQLite: a temp staging table, then one transaction into the table.

Everything but the driver calls, the column types and two words SQLite says its own way comes
from SqlLoader and SqlDialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.schema_evolution import DestinationColumn, Dialect
from dpone.targets.framework.sql_dialect import SqlDialect
from dpone.targets.framework.sql_loader import SqlLoader
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError, DataError, TransientError
from dpone_protocol.json_schema import ColumnType, Logical

# Numbers and decimals as TEXT: SQLite's REAL would round them, and every digit must arrive.
_TYPES = {Logical.INTEGER: "INTEGER", Logical.BOOLEAN: "INTEGER"}


def sqlite_type(column: ColumnType) -> str:
    if column.logical is Logical.NUMBER and column.bits:
        return "REAL"  # the source declared a binary float
    return _TYPES.get(column.logical, "TEXT")


# The planner's rules: a TEXT column holds anything; SQLite cannot alter a column's type, so
# nothing widens or casts; names match case-insensitively, as in SQLite.
SQLITE = Dialect(
    column_type=sqlite_type,
    holds=lambda existing, incoming: existing in (incoming, "TEXT"),
    widens=lambda existing, incoming: False,
    casts=lambda existing, incoming: False,
    column_key=str.lower,
)


class SqliteSql(SqlDialect):
    table_options = "STRICT"  # a value of the wrong type is refused (SQLite 3.37+), not stored as it came

    def primary_key(self, keys: list[str], key_name: str | None) -> str | None:
        # The merge finds each staged key through this index: without it, every batch scans the table.
        return f"PRIMARY KEY ({self.column_list(keys)})" if keys else None

    def delete_matching(self, table: str, source: str, keys: Iterable[str]) -> str:
        # SQLite's DELETE has no USING clause; IN over the staged keys probes the table's key index.
        columns = self.column_list(keys)
        return f"DELETE FROM {table} WHERE ({columns}) IN (SELECT {columns} FROM {source})"

    def now(self) -> str:
        return "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


def _value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return DEFAULT_CODEC.dumps(value).decode()  # exact numbers inside stay as they came
    if isinstance(value, Decimal):
        return str(value)
    return value


class SqliteLoader(SqlLoader):
    dialect = SQLITE
    sql = SqliteSql()

    def __init__(self, config: Mapping[str, Any]) -> None:
        import sqlite3  # noqa: PLC0415 - lazy: `--help` and `--about` must not load the driver

        self.schema = "main"  # SQLite's one schema per file
        self.keep_staging = bool(config.get("keep_staging", False))
        self._errors = sqlite3.Error
        self._busy = sqlite3.OperationalError
        try:
            # isolation_level=None: the base issues BEGIN and COMMIT itself.
            self.conn = sqlite3.connect(str(config.get("path") or "dpone.sqlite"), isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open {config.get('path')}: {exc}") from None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        return self.conn.execute(sql, params or ())

    def error(self, exc: Exception, doing: str) -> Exception:
        if isinstance(exc, self._busy) and "locked" in str(exc):
            return TransientError(f"{doing}: {exc}")  # another writer: the batch is retried
        if isinstance(exc, self._errors):
            return DataError(f"{doing}: {exc}")
        return exc

    def temp_ref(self, name: str) -> str:
        return f"temp.{self.sql.q(name)}"

    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        rows = self.run(f"PRAGMA table_info({self.sql.q(table)})", "reading the table's columns").fetchall()
        return {row[1]: DestinationColumn(row[2], not row[3]) for row in rows} or None

    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        columns = list(plan.columns)
        insert = f"INSERT INTO {staging} VALUES ({', '.join('?' for _ in columns)})"
        rows = ([_value(v) for v in map(record.get, columns)] for record in records)
        try:
            self.conn.executemany(insert, rows)
        except self._errors as exc:
            raise DataError(f"stream {plan.stream!r}: {self._refused(insert, columns, records, exc)}") from None

    def _refused(self, insert: str, columns: list[str], records: list[dict[str, Any]], exc: Exception) -> str:
        """The value a STRICT column refused, found by loading the batch's rows one at a time."""
        for position, record in enumerate(records, 1):
            row = [_value(v) for v in map(record.get, columns)]
            try:
                self.conn.execute(insert, row)
            except self._errors as refused:
                # SQLite names the column last: "cannot store TEXT value in INTEGER column t.id".
                column = next((c for c in columns if str(refused).endswith(f".{c}")), None)
                if column is not None:
                    return f"record {position} of the batch, column {column!r}: {record[column]!r} does not fit"
                return f"record {position} of the batch: {refused}"
        return str(exc)

    def close(self) -> None:
        self.conn.close()
