"""target-clickhouse's loader: the staging-first contract, the ClickHouse way.

- bulk load: the batch's RECORD lines go to the server in one INSERT ... SELECT into a staging
  table (Memory engine), which parses, converts and checks every value (insert_sql.py). This is
  most of the work, and with two lanes (connections) it runs for the next batch while the one
  before is moved into its table.
- finalize, in batch order: the queued schema changes, then one `INSERT INTO table SELECT FROM
  staging`. ClickHouse writes an INSERT of one block atomically, and a batch is one block; the
  INSERT carries a deduplication token (a hash of the table and the batch), so a retry of a batch
  whose acknowledgement was lost does not insert it twice. An upsert table is a ReplacingMergeTree
  whose version column (arrival order, batch.VersionClock) says which row of a key is newest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dpone.targets.clickhouse.batch import BAD_ESCAPE, bad_escape
from dpone.targets.clickhouse.ddl import INTERNAL_COLUMNS, SQL, TableLayout
from dpone.targets.clickhouse.insert_sql import BAD_VALUES, READ_SETTINGS, BatchInsert, batch_insert
from dpone.targets.clickhouse.type_map import NUMBER_MODES, OBJECT_MODES, dialect, is_nullable, normalize
from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.encoded_rows import EncodedRows
from dpone.targets.framework.line_batch import LineBatch, LineRouter, Lines, VersionClock
from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.schema_evolution import DestinationColumn, SchemaPlan, change_statements
from dpone.targets.framework.sql_dialect import TABLE_VERSION
from dpone.targets.framework.sql_loader import STAGING_PREFIX, FetchedRows, SqlLoader
from dpone_drivers.clickhouse import SECRET_KEYS, classify, connect, database_of, error_code, is_embedded, message_of
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError

log = logging.getLogger(__name__)
# Statements that change a table wait until every replica has applied them.
DDL_SETTINGS = {"mutations_sync": 2, "alter_sync": 2}
# Errors of a batch's values: parsing (CANNOT_PARSE_*, ...) and our checks (throwIf).
_VALUE_ERRORS = {6, 26, 27, 38, 41, 69, 70, 72, 117, 131, 321, 376, 395, 467, 1000}
_AT_ROW = re.compile(r"\(at row (\d+)\)")
_KEY = re.compile(r"while reading the value of (?:nested )?key ([^)]*)\)")


class ClickHouseLoader(SqlLoader):
    sql = SQL
    stamps_load_times = True  # now64() at insert
    background_commit = True  # the server parses a batch while the next one is read

    def __init__(
        self, config: Mapping[str, Any], *, read_only: bool = False, primary: ClickHouseLoader | None = None
    ) -> None:
        self.config = config
        self.redactor = Redactor()
        self.redactor.add_config(config, SECRET_KEYS)
        self.schema = database_of(config)
        self.numbers = str(config.get("unbounded_numbers") or NUMBER_MODES[0])
        if self.numbers not in NUMBER_MODES:
            raise ConfigError(f"unbounded_numbers must be one of {', '.join(NUMBER_MODES)}; got {self.numbers!r}")
        self.objects = str(config.get("object_columns") or OBJECT_MODES[0])
        if self.objects not in OBJECT_MODES:
            raise ConfigError(f"object_columns must be one of {', '.join(OBJECT_MODES)}; got {self.objects!r}")
        self.dialect = dialect(self.numbers, self.objects)
        self.staging_dir = config.get("staging_dir") or None
        if self.staging_dir is not None and not os.path.isdir(self.staging_dir):
            raise ConfigError(f"staging_dir {self.staging_dir!r} is not a directory")
        self.keep_staging = bool(config.get("keep_staging", False))
        self.lanes = 1 if self.keep_staging else max(1, int(config.get("load_connections") or 2))
        self.embedded = is_embedded(config)
        self._router = LineRouter()
        self._lanes: list[ClickHouseLoader] = []  # lanes 1.. (lane 0 is this loader)
        self.index = len(primary._lanes) + 1 if primary else 0
        # Shared by every lane: the tables' columns (table -> column -> type, internal ones too), the versions.
        self._tables: dict[str, dict[str, str]] = primary._tables if primary else {}
        self.clock: VersionClock = primary.clock if primary else VersionClock()
        # Shadow tables of full refreshes not created yet (begin_replace) -> their CREATE.
        self._shadows: dict[str, str] = primary._shadows if primary else {}
        self._staged: dict[str, tuple[BatchInsert, str]] = {}  # staging -> its load and dedup token
        self.client: Any = connect(config, self.redactor, session=True)
        if not read_only and primary is None:
            self.run(f"CREATE DATABASE IF NOT EXISTS {SQL.q(self.schema)}", f"creating database {self.schema}")

    # -- the driver ------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        if sql.startswith("SELECT"):
            return FetchedRows(self.client.query(sql).result_rows)
        return self.client.command(sql, settings=DDL_SETTINGS)

    def error(self, exc: Exception, doing: str) -> Exception:
        return classify(exc, self.redactor, doing)

    def reconnect(self) -> None:
        self.close()
        self.client = connect(self.config, self.redactor, session=True)

    def lane(self, index: int) -> ClickHouseLoader:
        if index == 0:
            return self
        while len(self._lanes) < index:
            self._lanes.append(ClickHouseLoader(self.config, primary=self))
        return self._lanes[index - 1]

    def close(self) -> None:
        for lane in self._lanes:
            lane.close()
        if self.client is not None:
            self.client.close()
            self.client = None

    # -- tables ----------------------------------------------------------------------------------
    def columns_of(self, table: str) -> dict[str, str] | None:
        """Every column of `table` with its type (the internal ones too), or None without the table."""
        if table not in self._tables:
            rows = self.run(
                "SELECT name, type FROM system.columns WHERE database = "
                f"{SQL.literal(self.schema)} AND table = {SQL.literal(table)} ORDER BY position",
                f"reading the columns of {self.schema}.{table}",
            ).fetchall()
            if not rows:
                return None
            self._tables[table] = {name: normalize(type_) for name, type_ in rows}
        return self._tables[table]

    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        columns = self.columns_of(table)
        if columns is None:
            return None
        return {
            name: DestinationColumn(type_, is_nullable(type_))
            for name, type_ in columns.items()
            if name not in INTERNAL_COLUMNS
        }

    def _changed(self, *tables: str) -> None:
        for table in tables:
            self._tables.pop(table, None)

    def _create(self, plan: StreamPlan, table: str, columns: Mapping[str, str]) -> str:
        layout = TableLayout.for_stream(self.config, plan.stream)
        keys = plan.key_columns
        return SQL.create(self.table_ref(table), columns, keys, layout, replacing=plan.merges, stream=plan.stream)

    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        if schema.creates:
            return [self._create(plan, table, schema.table_columns)]
        return change_statements(schema, self.table_ref(table), SQL)

    def apply_schema(self, table: str, statements: list[str]) -> None:
        self._changed(table)
        super().apply_schema(table, statements)

    # -- batches ---------------------------------------------------------------------------------
    def row_encoder(self, plan: StreamPlan, policy: BatchPolicy, *, metadata: bool) -> LineBatch:
        return LineBatch(plan.stream, policy, tuple(plan.key_properties), self.clock)

    def line_router(self) -> LineRouter:
        return self._router

    def prepare_staging(self, plan: StreamPlan) -> str:
        # A temporary table is the session's (each lane has its own): nothing outlives a killed run.
        # Kept staging is a table of the database, per process and lane.
        if not self.keep_staging:
            staging = self.temp_ref(self.sql.fit_name(STAGING_PREFIX + plan.table))
        else:
            staging = self.table_ref(self.sql.fit_name(f"{STAGING_PREFIX}{plan.table}_{os.getpid()}_{self.index}"))
        self.run(SQL.drop_table(staging), "dropping old staging")
        return staging

    def bulk_load_encoded(self, plan: StreamPlan, staging: str, rows: EncodedRows) -> None:
        """Parse, convert and check the batch into staging, which holds the rows as the table will."""
        types = {**(plan.table_columns or self.column_types(plan)), **INTERNAL_COLUMNS}
        load = batch_insert(plan, types, plan.key_columns, self.numbers, self.objects)
        columns = ", ".join(f"{SQL.q(c)} {types[c]}" for c in load.columns)
        malformed = bad_escape(rows.data)
        if malformed is not None:
            raise DataError(f"{self._record(plan, rows.data, malformed)}: {BAD_ESCAPE}")
        kind, engine = ("TABLE", "MergeTree ORDER BY tuple()") if self.keep_staging else ("TEMPORARY TABLE", "Memory")
        self.run(f"CREATE {kind} {staging} ({columns}) ENGINE = {engine}", "creating staging")
        base = getattr(rows.data, "version_base", 0) or self.clock.reserve(rows.rows)
        token = hashlib.sha256(plan.table.encode() + b"\x00" + rows.data).hexdigest()
        self._staged[staging] = (load, token)
        try:
            self._send(lambda source: load.statement(staging, source, base), load.structure, rows.data, READ_SETTINGS)
        except Exception as exc:
            if error_code(exc) in _VALUE_ERRORS:
                raise DataError(self._unfit(plan, load, rows.data, exc)) from None
            raise self.typed_error(exc, f"stream {plan.stream!r}: loading staging") from None
        staged = self.run(f"SELECT count() FROM {staging}", "counting staged rows").fetchone()
        if staged != (rows.rows,):
            # ClickHouse's reader takes two objects on one line as two rows: not a RECORD line.
            raise DataError(self._miscounted(plan, rows.data, rows.rows, staged[0] if staged else 0))

    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        batch = LineBatch(plan.stream, BatchPolicy(max_rows=len(records) + 1), clock=self.clock)
        for record in records:
            batch.add(record, record.get(TABLE_VERSION), None, 0)
        self.bulk_load_encoded(plan, staging, EncodedRows(batch.take(), len(records), False))

    def finalize(self, plan: StreamPlan, staging: str, table: str, schema: list[str]) -> None:
        self._create_shadow(table)
        if schema:
            self._changed(table)
            self.run_all(schema, f"stream {plan.stream!r}: changing {self.schema}.{table}")
        load, token = self._staged[staging]
        live = self.columns_of(table)
        if live is None:
            raise DataError(f"stream {plan.stream!r}: table {self.schema}.{table} does not exist (dropped mid-run?)")
        columns = SQL.column_list(c for c in load.columns if c in live)
        insert = f"INSERT INTO {self.table_ref(table)} ({columns}) SELECT {columns} FROM {staging}"
        try:
            # No merge of the block's own duplicate keys at insert (optimize_on_insert): every row has its
            # version, so FINAL and background merges keep the newest; the insert is 7% cheaper.
            self.client.command(insert, settings={"insert_deduplication_token": token, "optimize_on_insert": 0})
        except Exception as exc:
            raise self.typed_error(exc, f"stream {plan.stream!r}: loading {self.schema}.{table}") from None

    def cleanup(self, plan: StreamPlan, staging: str) -> None:
        self._staged.pop(staging, None)
        super().cleanup(plan, staging)

    def _send(
        self, statement: Callable[[str], str], structure: str, data: bytes | bytearray, settings: dict[str, Any]
    ) -> None:
        """Run `statement(source)` with the batch as its source: input() over HTTP (the batch is the
        request body), file() on the embedded engine (which takes no body)."""
        if not self.embedded:
            sql = statement(f"input({SQL.literal(structure)})") + " FORMAT JSONEachRow"
            self.client.command(sql, data=bytes(data), settings=settings)  # the driver sends bytes only
            return
        fd, path = tempfile.mkstemp(prefix="dpone-clickhouse-", suffix=".jsonl", dir=self.staging_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            source = f"file({SQL.literal(path)}, 'JSONEachRow', {SQL.literal(structure)})"
            self.client.command(statement(source), settings=settings)
        finally:
            os.unlink(path)

    def _unfit(self, plan: StreamPlan, load: BatchInsert, data: bytes | bytearray, exc: Exception) -> str:
        """Which record of the batch, and which column, the server refused."""
        reason = message_of(exc, self.redactor)
        stream = f"stream {plan.stream!r}"
        if BAD_VALUES not in reason:
            row = _AT_ROW.search(reason)
            keys = [k for k in _KEY.findall(reason) if k != "record"]
            clean = reason.split(": (while reading", 1)[0].split(" (at row", 1)[0].strip(" :")
            where = self._record(plan, data, int(row.group(1))) if row else f"{stream}, a record of the batch"
            column = f", column {keys[0]!r}" if keys else ""
            return f"{where}{column}: {clean}"
        found = self._first_unfit(load, data)
        if found is None:
            return f"{stream}: {reason}"
        at, column, value, why = found
        if value == "null" and column in plan.key_columns:
            return f"{self._record(plan, data, at)}: record has no value for key property {column!r}"
        return f"{self._record(plan, data, at)}, column {column!r}: {value} ({why})"

    def _first_unfit(self, load: BatchInsert, data: bytes | bytearray) -> tuple[int, str, str, str] | None:
        names = list(load.checks)
        flags = ", ".join(f"ifNull({check}, 0)" for check, _, _ in load.checks.values())
        raws = ", ".join(f"toString({raw})" for _, raw, _ in load.checks.values())
        table = f"_dpone_check_{os.getpid()}_{self.index}"
        ref = self.table_ref(table)
        found: list[Any] = []
        try:
            self.run(
                f"CREATE TABLE {ref} (n UInt64, ok Array(UInt8), raw Array(Nullable(String))) ENGINE = Memory",
                "finding the unfit value",
            )
            select = f"rowNumberInAllBlocks() + 1, [{flags}], [{raws}]"
            self._send(
                lambda source: f"INSERT INTO {ref} SELECT {select} FROM {source}",
                load.structure,
                data,
                dict(READ_SETTINGS),
            )
            found = list(
                self.run(
                    f"SELECT n, ok, raw FROM {ref} WHERE has(ok, 0) ORDER BY n LIMIT 1", "finding the unfit value"
                ).fetchall()
            )
        except Exception:
            log.debug("finding the unfit value failed", exc_info=True)
        finally:
            self.run(SQL.drop_table(ref), "dropping the check table")
        if not found:
            return None
        n, ok, raw = found[0]
        at = list(ok).index(0)
        value = raw[at]
        if value is None:
            return int(n), names[at], "null", "no value (null or missing) for a column that takes none"
        shown = repr(value if len(value) <= 60 else value[:57] + "...")
        return int(n), names[at], shown, load.checks[names[at]][2]

    def _miscounted(self, plan: StreamPlan, data: bytes | bytearray, lines: int, rows: int) -> str:
        """Which line of the batch is not one JSON object (found by decoding them, the error path only)."""
        for number, line in enumerate(bytes(data).splitlines(), 1):
            try:
                json.loads(line)
            except ValueError as exc:
                return f"{self._record(plan, data, number)}: malformed JSON ({exc})"
        return f"stream {plan.stream!r}: the batch's {lines} lines gave {rows} rows: a line is not one JSON object"

    @staticmethod
    def _record(plan: StreamPlan, data: bytes | bytearray, row: int) -> str:
        """Where the batch's row `row` came from: `line N, stream 's' (key)` where the reader said,
        else `stream 's', record N of the batch (key)`; the key finds it in the source."""
        line = data.input_line(row) if isinstance(data, Lines) else None
        where = f"line {line}, stream {plan.stream!r}" if line else f"stream {plan.stream!r}, record {row} of the batch"
        lines = data.split(b"\n", row)
        if 0 < row <= len(lines) and plan.key_properties:
            try:
                # The standard library reads any number (orjson refuses 1e400): the error path only.
                decoded = json.loads(bytes(lines[row - 1]).decode("utf-8", "replace"), parse_float=str)
                record = decoded.get("record", decoded) if isinstance(decoded, dict) else {}
                if any(record.get(k) is not None for k in plan.key_properties):
                    key = ", ".join(f"{k}={record.get(k)!r}" for k in plan.key_properties)
                    return f"{where} ({key})"
            except (ValueError, AttributeError):
                pass
        return where

    # -- full refresh and versions ---------------------------------------------------------------
    def begin_replace(self, plan: StreamPlan) -> str:
        """The shadow of a full refresh, created by the first batch that moves into it (or by the
        swap, for an empty source): a refresh whose first batch fails leaves no table behind."""
        shadow = self.shadow_name(plan.table)
        columns = plan.table_columns or self.column_types(plan)
        self._changed(shadow)
        self.run(SQL.drop_table(self.table_ref(shadow)), f"dropping an old shadow table {shadow}")
        self._shadows[shadow] = self._create(plan, shadow, columns)
        return shadow

    def _create_shadow(self, shadow: str) -> None:
        create = self._shadows.pop(shadow, None)
        if create is not None:
            self._changed(shadow)
            self.run(create, f"creating the shadow table {shadow}")

    def swap_statements(self, table: str, shadow: str) -> list[str]:
        self._changed(table, shadow)
        if self.columns_of(table) is None:
            return [SQL.rename(self.schema, table, shadow)]
        return SQL.exchange(self.schema, table, shadow)

    def swap(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        self._create_shadow(shadow)
        super().swap(plan, shadow, schema)
        self._changed(plan.table, shadow)

    def merge_shadow(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        if schema:
            self._changed(plan.table)
            self.run_all(schema, f"stream {plan.stream!r}: changing {self.schema}.{plan.table}")
        if self._shadows.pop(shadow, None) is not None:
            return  # never created: no row to merge
        live, rows = self.columns_of(plan.table) or {}, self.columns_of(shadow) or {}
        shared = SQL.column_list(c for c in rows if c in live)
        self.run(
            f"INSERT INTO {self.table_ref(plan.table)} ({shared}) SELECT {shared} FROM {self.table_ref(shadow)}",
            f"merging the resumed refresh into {self.schema}.{plan.table}",
        )
        self.run(SQL.drop_table(self.table_ref(shadow)), "dropping the shadow table")
        self._changed(shadow)

    def table_version(self, table: str) -> int | None:
        columns = self.columns_of(table)
        if not columns or TABLE_VERSION not in columns:
            return None
        row = self.run(f"SELECT max({SQL.q(TABLE_VERSION)}) FROM {self.table_ref(table)}", "reading the version")
        found = row.fetchone()
        return None if found is None or found[0] is None else int(found[0])
