"""target-mssql's loader: parameter arrays (or bcp) into a #temp staging table, then one transaction.

Each batch goes into a session temp table with `fast_executemany` (typed parameter arrays, one
round trip per chunk of rows), or with bcp by setting; the move into the table (INSERT ...
SELECT, or one MERGE WITH (HOLDLOCK) on the key) runs in an explicit transaction with
XACT_ABORT on, so a failed batch leaves the table as it was. A full refresh fills a shadow table
and swaps it in with DROP + sp_rename in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.loader_sink import input_line
from dpone.targets.framework.schema_evolution import Action, DestinationColumn, SchemaPlan
from dpone.targets.framework.sql_dialect import DELETED_AT
from dpone.targets.framework.sql_loader import SqlLoader
from dpone.targets.mssql import bcp
from dpone.targets.mssql.ddl import DESCRIBE_TABLE, JSON_TYPE, SCHEMA_EXISTS, SESSION_OPTIONS, MssqlSql
from dpone.targets.mssql.params import Binding, ParameterArrays, Unfit, binding, parameter_arrays
from dpone.targets.mssql.type_map import (
    FLOAT_NUMBERS,
    NUMBER_MODES,
    OFFSET_TIMESTAMPS,
    TIMESTAMP_MODES,
    dialect,
    normalize,
)
from dpone_drivers.mssql import classify, connect, driver_errors, error_number, is_freetds, setting
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.json_schema import Logical

log = logging.getLogger(__name__)
APPLICATION_NAME = "dpone-target-mssql"
FAST_EXECUTEMANY = "fast_executemany"
BCP = "bcp"
BULK_METHODS = (FAST_EXECUTEMANY, BCP)
# Parameter arrays are allocated whole by the driver: a chunk is kept under this many bytes.
CHUNK_BYTES = 64 * 1024 * 1024
JSON_LOGICALS = (Logical.OBJECT, Logical.ARRAY, Logical.JSON)
SCHEMA_EXISTS_ALREADY = 2714
FREETDS_NEEDS_BCP = (
    "target-mssql with the FreeTDS driver needs bulk_method: bcp (FreeTDS cannot bind parameter arrays "
    "exactly); or use Microsoft ODBC Driver 18, the default driver"
)


class MssqlLoader(SqlLoader):
    sql: MssqlSql

    def __init__(self, config: Mapping[str, Any], redactor: Redactor, *, read_only: bool = False) -> None:
        self.config = config
        self.redactor = redactor
        self.read_only = read_only
        self.schema = str(config.get("default_target_schema") or "dbo")
        self.keep_staging = bool(config.get("keep_staging", False))
        self.numbers = _choice(config, "number_type", FLOAT_NUMBERS, NUMBER_MODES)
        timestamps = _choice(config, "timestamp_type", OFFSET_TIMESTAMPS, TIMESTAMP_MODES)
        self.bulk_method = _choice(config, "bulk_method", FAST_EXECUTEMANY, BULK_METHODS)
        self.chunk_rows = setting(config, "insert_chunk_rows", 10_000)
        self.sql = MssqlSql()
        self.json_check = bool(config.get("json_check", False))
        self.dialect = dialect(self.numbers, timestamps)
        # FreeTDS 1.3's ODBC driver crashes on parameter arrays (it ignores the bind offset), and row
        # by row it drops offsets, fractions and varbinary values: only its freebcp loads exactly.
        self.freetds = is_freetds(config)
        if self.freetds and self.bulk_method != BCP:
            raise ConfigError(FREETDS_NEEDS_BCP)
        # bcp runs in its own session: it sees a global ##temp table, not this session's #temp.
        self.bcp = bcp.BcpTool.find(config, redactor) if self.bulk_method == BCP else None
        self._token = secrets.token_hex(4)  # keeps this run's global staging apart from another's
        self._errors = driver_errors()
        self.conn = self._connect()

    # -- plumbing -----------------------------------------------------------------------------
    def _connect(self) -> Any:
        conn = connect(self.config, self.redactor, APPLICATION_NAME, autocommit=True)
        try:
            for option in SESSION_OPTIONS:
                conn.execute(option)
            missing = conn.execute(SCHEMA_EXISTS, self.schema).fetchone() is None
            if missing and not self.read_only:
                try:
                    conn.execute(f"CREATE SCHEMA {self.sql.q(self.schema)}")
                except self._errors as exc:
                    if error_number(exc) != SCHEMA_EXISTS_ALREADY:  # made meanwhile by another run
                        raise
        except self._errors as exc:
            with contextlib.suppress(*self._errors):
                conn.close()
            raise classify(exc, self.redactor, f"preparing schema {self.schema}") from None
        return conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cursor = self.conn.cursor()
        return cursor.execute(sql, list(params)) if params else cursor.execute(sql)

    def error(self, exc: Exception, doing: str) -> Exception:
        return classify(exc, self.redactor, doing) if isinstance(exc, self._errors) else exc

    def reconnect(self) -> None:
        with contextlib.suppress(*self._errors):  # already gone: that is why we reconnect
            self.conn.close()
        self.conn = self._connect()

    def close(self) -> None:
        self.conn.close()

    # -- names --------------------------------------------------------------------------------
    def temp_ref(self, name: str) -> str:
        if self.bcp is not None:
            return self.sql.q("##" + self.sql.fit_name(name, f"_{self._token}"))
        return self.sql.q(f"#{name}")

    def stored_name(self, table: str) -> str:
        return self.sql.fit_name(table)  # sysname holds 128 characters: a longer name is cut and hashed

    # -- JSON columns' CHECK constraints (json_check) ----------------------------------------------
    def json_columns(self, plan: StreamPlan, types: Mapping[str, str]) -> list[str]:
        """Of the `types` (column -> SQL type) being created, those holding JSON, when checks are asked."""
        if not self.json_check:
            return []
        return [
            name
            for name, type_ in types.items()
            if type_ == JSON_TYPE and (column := plan.columns.get(name)) is not None and column.logical in JSON_LOGICALS
        ]

    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        statements = super().schema_statements(plan, schema, table)
        if schema.creates:
            new = dict(schema.table_columns)
        else:
            added = (Action.ADD_COLUMN, Action.NEW_COLUMN)
            new = {c.column: str(c.wanted) for c in schema.ddl if c.action in added and c.column}
        target = self.table_ref(table)
        return statements + [self.sql.json_check(target, name) for name in self.json_columns(plan, new)]

    def begin_replace(self, plan: StreamPlan) -> str:
        shadow = super().begin_replace(plan)
        types = plan.table_columns or self.column_types(plan)
        checks = [self.sql.json_check(self.table_ref(shadow), name) for name in self.json_columns(plan, types)]
        self.run_all(checks, f"adding JSON checks to the shadow table {shadow}")
        return shadow

    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        rows = self.run(DESCRIBE_TABLE, "reading the table's columns", [self.table_ref(table)]).fetchall()
        columns = {
            str(name): DestinationColumn(normalize(str(type_), int(length), int(precision), int(scale)), bool(nullable))
            for name, type_, length, precision, scale, nullable in rows
        }
        return columns or None

    def finalize(self, plan: StreamPlan, staging: str, table: str, schema: list[str]) -> None:
        target = self.table_ref(table)
        if plan.merges and any(s.startswith(f"CREATE TABLE {target} ") for s in schema):
            # A table created in this very transaction is empty and staging holds one row per key:
            # a plain INSERT does the MERGE's work without its join.
            hard = plan.hard_delete and DELETED_AT in plan.columns
            where = f"{self.sql.q(DELETED_AT)} IS NULL" if hard else ""
            moves = [self.sql.insert(target, staging, list(plan.columns), where)]
            self.run_all([*schema, *moves], f"stream {plan.stream!r}: loading {self.schema}.{table}")
            return
        super().finalize(plan, staging, table, schema)

    # -- the bulk path ------------------------------------------------------------------------
    def bindings(self, plan: StreamPlan) -> list[tuple[str, Binding]]:
        types = self.column_types(plan)
        return [(name, binding(plan.columns[name], type_, self.numbers)) for name, type_ in types.items()]

    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        columns = self.bindings(plan)
        try:
            arrays = parameter_arrays(records, columns)
        except Unfit as exc:
            raise DataError(
                f"{input_line(records, exc.index + 1)}, stream {plan.stream!r}, column {exc.column!r}: {exc.reason}"
            ) from None
        names = [name for name, _ in columns]
        if self.bcp is not None and self.bcp.load(staging, names, arrays.rows, plan.stream):
            return
        if self.freetds:
            raise DataError(
                f"stream {plan.stream!r}: a value holds a character bcp's files cannot carry (0x1F, 0x1E or NUL), "
                "and FreeTDS cannot bind it exactly either; load this stream with Microsoft ODBC Driver 18"
            )
        self.insert_arrays(plan, staging, names, arrays)

    def insert_arrays(self, plan: StreamPlan, staging: str, names: list[str], arrays: ParameterArrays) -> None:
        statement = self.sql.insert_values(staging, names)
        step = chunk_rows(arrays.input_sizes, self.chunk_rows)
        cursor = self.conn.cursor()
        cursor.fast_executemany = True
        cursor.setinputsizes(arrays.input_sizes)
        try:
            for start in range(0, len(arrays.rows), step):
                cursor.executemany(statement, arrays.rows[start : start + step])
        except self._errors as exc:
            raise classify(exc, self.redactor, f"stream {plan.stream!r}: loading staging") from None


def chunk_rows(sizes: Sequence[tuple[int, int, int]], most: int) -> int:
    """Rows per executemany call: the driver allocates the whole parameter array at once."""
    row_bytes = sum(2 * size + 16 if size else 64 for _, size, _ in sizes) or 1
    return max(1, min(most, CHUNK_BYTES // row_bytes))


def _choice(config: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = str(config.get(key) or default)
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return value
