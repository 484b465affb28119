"""target-duckdb's staging-first loader: JSON file -> temp staging table -> one transaction.

Each batch is written to a JSON Lines file, every value through its column's converter
(values.py), each row with its position in the batch, then read_json fills the staging table.
A value that cannot go in unchanged stops the load naming its input line and column.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from typing import Any

from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError, DataError
from targets.duckdb import ddl
from targets.duckdb.connector import connect, error_types
from targets.duckdb.type_map import DEFAULT_NUMBERS, NUMBER_MODES, ROUNDED_NUMBERS, dialect, duckdb_type, normalize
from targets.duckdb.values import Convert, converter, read_as, shown
from targets.framework.loader import Loader, StreamPlan
from targets.framework.schema_evolution import DestinationColumn, SchemaPlan, change_statements

log = logging.getLogger(__name__)
SHADOW_SUFFIX = "__dpone_new"
# The key under which the sink leaves a record's input line (a name no JSON property will have).
LINE_KEY = "\x00dpone_line"
ROW_COLUMN = "__dpone_row"
_STAMPED = ("_sdc_received_at", "_sdc_batched_at")
# read_json's own default; a batch with a longer line raises it to that line's length.
DEFAULT_MAX_OBJECT_BYTES = 16 * 1024 * 1024
_DUCKDB_LINE = re.compile(r"in line (\d+)")
_DUCKDB_WHERE = re.compile(r"^.*in line \d+: ")


class DuckDBLoader(Loader):
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
                self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ddl.q(self.schema)}")

    def _table(self, name: str) -> str:
        return ddl.qualified(self.schema, name)

    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        if self.conn is None:
            return None  # a plan before the file exists: every table is new
        rows = self.conn.execute(
            "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.schema, table],
        ).fetchall()
        return {name: DestinationColumn(normalize(dtype), nullable) for name, dtype, nullable in rows} or None

    def _wanted(self, plan: StreamPlan) -> dict[str, str]:
        return {name: duckdb_type(col, self.numbers) for name, col in plan.columns.items()}

    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        target = self._table(table)
        if schema.creates:
            return [ddl.create_table(target, schema.table_columns)]
        return change_statements(schema, target, ddl)

    def _in_transaction(self, statements: list[str]) -> None:
        self.conn.execute("BEGIN")
        try:
            for sql in statements:
                self.conn.execute(sql)
            self.conn.execute("COMMIT")
        except Exception:
            # A COMMIT that failed (a read-only file, a full disk) has already ended the
            # transaction: the rollback's own error must not hide the one that got us here.
            with contextlib.suppress(Exception):
                self.conn.execute("ROLLBACK")
            raise

    def flush_schema(self, table: str) -> None:
        statements = self.take_schema(table)
        if statements:
            self._in_transaction(statements)
            for sql in statements:
                log.info("schema change on %s.%s: %s", self.schema, table, sql)

    def prepare_staging(self, plan: StreamPlan) -> str:
        name = f"_dpone_stage_{plan.table}"
        # Kept staging must outlive the process to be inspected: a regular table then.
        staging = self._table(name) if self.keep_staging else f"temp.{ddl.q(name)}"
        self.conn.execute(f"DROP TABLE IF EXISTS {staging}")
        self.conn.execute(ddl.create_table(staging, self._wanted(plan), temp=not self.keep_staging))
        return staging

    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        wanted = self._wanted(plan)
        rounding = self.numbers == ROUNDED_NUMBERS
        converters = [(name, converter(plan.columns[name], type_, rounding)) for name, type_ in wanted.items()]
        fd, path = tempfile.mkstemp(prefix="dpone-duckdb-", suffix=".jsonl", dir=self.staging_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                longest = self._write_rows(plan, fh, records, converters)
            read = {name: read_as(type_) for name, type_ in wanted.items()}
            limit = max(DEFAULT_MAX_OBJECT_BYTES, longest + 1)
            try:
                self.conn.execute(ddl.load_json(staging, ddl.read_json(path, read, limit), wanted))
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
                        where = _where(records, position)
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
                    f"{_where(records, int(found[0]))}, stream {plan.stream!r}, column {name!r}: "
                    f"{shown(found[1])} does not fit {type_} ({why})"
                )
        match = _DUCKDB_LINE.search(reason)
        staged = int(match.group(1)) if match else 0
        near = f"{_where(records, staged)} or near it, " if 0 < staged <= len(records) else ""
        return f"{near}stream {plan.stream!r}: a record does not fit the table: {reason}"

    def finalize(self, plan: StreamPlan, staging: str, table: str) -> None:
        target = self._table(table)
        columns = list(plan.columns)
        deleted = "_sdc_deleted_at" in plan.columns and plan.hard_delete
        # Schema changes commit with the rows they are for, or not at all.
        statements = self.take_schema(table)
        if plan.merges:
            statements.append(ddl.delete_matching(target, staging, plan.key_properties))
        where = "_sdc_deleted_at IS NULL" if deleted and plan.merges else ""
        statements.append(ddl.insert_from(target, staging, columns, where))
        try:
            self._in_transaction(statements)
        except self._data_errors as exc:  # a constraint of the table the rows break: rolled back
            raise DataError(
                f"stream {plan.stream!r}: loading {self.schema}.{table}: {str(exc).splitlines()[0]}"
            ) from None

    def cleanup(self, plan: StreamPlan, staging: str) -> None:
        if not self.keep_staging:
            self.conn.execute(f"DROP TABLE IF EXISTS {staging}")

    def begin_replace(self, plan: StreamPlan) -> str:
        shadow = f"{plan.table}{SHADOW_SUFFIX}"
        self.conn.execute(f"DROP TABLE IF EXISTS {self._table(shadow)}")
        self.conn.execute(ddl.create_table(self._table(shadow), plan.table_columns or self._wanted(plan)))
        return shadow

    def swap(self, plan: StreamPlan, shadow: str) -> None:
        self._in_transaction(
            [
                *self.take_schema(shadow),
                f"DROP TABLE IF EXISTS {self._table(plan.table)}",
                f"ALTER TABLE {self._table(shadow)} RENAME TO {ddl.q(plan.table)}",
            ]
        )
        log.info("replaced %s.%s", self.schema, plan.table)

    def table_version(self, table: str) -> int | None:
        columns = self.describe_table(table)
        if not columns or "_sdc_table_version" not in columns:
            return None
        return self.conn.execute(f"SELECT max(_sdc_table_version) FROM {self._table(table)}").fetchone()[0]  # type: ignore[no-any-return]

    def merge_shadow(self, plan: StreamPlan, shadow: str) -> None:
        self.flush_schema(shadow)
        self.finalize(plan, self._table(shadow), plan.table)
        self.conn.execute(f"DROP TABLE IF EXISTS {self._table(shadow)}")

    def activate_version(self, plan: StreamPlan, version: int) -> None:
        if "_sdc_table_version" not in plan.columns:
            log.warning("stream %s: ACTIVATE_VERSION ignored: add_record_metadata is off", plan.stream)
            return
        table = self._table(plan.table)
        older = "_sdc_table_version IS NULL OR _sdc_table_version < ?"
        if plan.hard_delete:
            self.conn.execute(f"DELETE FROM {table} WHERE {older}", [version])
        else:
            self.conn.execute(
                f"UPDATE {table} SET _sdc_deleted_at = now() WHERE ({older}) AND _sdc_deleted_at IS NULL",
                [version],
            )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _where(records: list[dict[str, Any]], position: int) -> str:
    """The input line of the batch's record at `position` (1-based), or its place in the batch."""
    line = records[position - 1].get(LINE_KEY)
    return f"line {line}" if line is not None else f"record {position} of the batch"
