"""target-duckdb's staging-first loader: JSON file -> temp staging table -> one transaction.

Each batch is written to a JSON Lines file, every value through its column's converter
(values.py), each row with its position in the batch, then read_json fills the staging table.
A value that cannot go in unchanged stops the load naming its input line and column.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from dpone.targets.duckdb import ddl
from dpone.targets.duckdb.connector import connect, error_types
from dpone.targets.duckdb.ddl import SQL
from dpone.targets.duckdb.type_map import (
    DEFAULT_NUMBERS,
    NUMBER_MODES,
    ROUNDED_NUMBERS,
    dialect,
    normalize,
)
from dpone.targets.duckdb.values import Convert, converter, read_as, shown
from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.loader_sink import input_line
from dpone.targets.framework.schema_evolution import DestinationColumn
from dpone.targets.framework.sql_loader import SqlLoader
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError, DataError

log = logging.getLogger(__name__)
ROW_COLUMN = "__dpone_row"
_STAMPED = ("_sdc_received_at", "_sdc_batched_at")
# read_json's own default; a batch with a longer line raises it to that line's length.
DEFAULT_MAX_OBJECT_BYTES = 16 * 1024 * 1024
_DUCKDB_LINE = re.compile(r"in line (\d+)")
_DUCKDB_WHERE = re.compile(r"^.*in line \d+: ")


class DuckDBLoader(SqlLoader):
    sql = SQL

    def __init__(self, config: Mapping[str, Any], *, read_only: bool = False) -> None:
        self.filepath = str(config.get("filepath") or "dpone.duckdb")
        self.schema = str(config.get("default_target_schema") or "main")
        self.keep_staging = bool(config.get("keep_staging", False))
        self.staging_dir = config.get("staging_dir") or None
        self.numbers = str(config.get("unbounded_numbers") or DEFAULT_NUMBERS)
        if self.numbers not in NUMBER_MODES:
            raise ConfigError(f"unbounded_numbers must be one of {', '.join(NUMBER_MODES)}; got {self.numbers!r}")
        self.dialect = dialect(self.numbers)
        # None only for a read-only plan before the file exists; every other path has a connection.
        self.conn: Any = connect(self.filepath, read_only=read_only)
        self._data_errors = error_types()
        if self.conn is not None:
            # A date-time without an offset is UTC, as in every dpone target, not the machine's zone.
            self.conn.execute("SET TimeZone = 'UTC'")
            if not read_only:
                self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SQL.q(self.schema)}")

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        return self.conn.execute(sql, params)

    def error(self, exc: Exception, doing: str) -> Exception:
        if isinstance(exc, self._data_errors):  # a constraint of the table the rows break: rolled back
            return DataError(f"{doing}: {str(exc).splitlines()[0]}")
        return exc

    def temp_ref(self, name: str) -> str:
        return f"temp.{SQL.q(name)}"

    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        if self.conn is None:
            return None  # a plan before the file exists: every table is new
        rows = self.conn.execute(
            "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.schema, table],
        ).fetchall()
        return {name: DestinationColumn(normalize(dtype), nullable) for name, dtype, nullable in rows} or None

    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        wanted = self.column_types(plan)
        rounding = self.numbers == ROUNDED_NUMBERS
        converters = [(name, converter(plan.columns[name], type_, rounding)) for name, type_ in wanted.items()]
        fd, path = tempfile.mkstemp(prefix="dpone-duckdb-", suffix=".jsonl", dir=self.staging_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                longest = self._write_rows(plan, fh, records, converters)
            read = {name: read_as(type_) for name, type_ in wanted.items()}
            limit = max(DEFAULT_MAX_OBJECT_BYTES, longest + 1)
            try:
                self.conn.execute(SQL.insert(staging, ddl.read_json(path, read, limit), wanted))
            except self._data_errors as exc:
                raise DataError(self._unfit(plan, records, path, limit, wanted, exc)) from None
        finally:
            os.unlink(path)

    @staticmethod
    def _write_rows(
        plan: StreamPlan, fh: Any, records: list[dict[str, Any]], converters: list[tuple[str, Convert | None]]
    ) -> int:
        """Write the staging file; the length of its longest line."""
        dumps = DEFAULT_CODEC.dumps
        # The load times are this target's own timestamps: nothing to check in them.
        active = [(name, convert) for name, convert in converters if convert is not None and name not in _STAMPED]
        longest = 0
        for position, record in enumerate(records, 1):
            # A copy: the batch itself stays as received (a retry, or naming a line, reads it again).
            row = record.copy()
            row[ROW_COLUMN] = position
            for name, convert in active:
                value = row.get(name)
                if value is not None:
                    try:
                        row[name] = convert(value)
                    except ValueError as exc:
                        where = input_line(records, position)
                        raise DataError(f"{where}, stream {plan.stream!r}, column {name!r}: {exc}") from None
            data = dumps(row)
            longest = max(longest, len(data))
            fh.write(data)
            fh.write(b"\n")
        return longest

    def _unfit(
        self,
        plan: StreamPlan,
        records: list[dict[str, Any]],
        path: str,
        limit: int,
        wanted: dict[str, str],
        exc: Exception,
    ) -> str:
        """The line and column of the value DuckDB refused, found by reading the staged values back as text."""
        reason = str(exc).splitlines()[0]
        for name, type_ in wanted.items():
            if type_ == "VARCHAR":
                continue  # text is always readable as text
            as_text = ddl.read_json(path, {name: "VARCHAR", ROW_COLUMN: "BIGINT"}, limit)
            found = self.conn.execute(ddl.first_unreadable(as_text, name, type_, ROW_COLUMN)).fetchone()
            if found is not None:
                # DuckDB's line and file are the staging file's; the input's line is in the prefix.
                why = _DUCKDB_WHERE.sub("", reason)
                return (
                    f"{input_line(records, int(found[0]))}, stream {plan.stream!r}, column {name!r}: "
                    f"{shown(found[1])} does not fit {type_} ({why})"
                )
        match = _DUCKDB_LINE.search(reason)
        staged = int(match.group(1)) if match else 0
        near = f"{input_line(records, staged)} or near it, " if 0 < staged <= len(records) else ""
        return f"{near}stream {plan.stream!r}: a record does not fit the table: {reason}"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
