"""target-duckdb's staging-first loader: JSON file -> temp staging table -> one transaction."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import DataError
from targets.duckdb import ddl
from targets.duckdb.connector import connect, error_types
from targets.duckdb.type_map import DUCKDB, duckdb_type, normalize
from targets.framework.loader import Loader, StreamPlan
from targets.framework.schema_evolution import DestinationColumn, SchemaPlan, change_statements

log = logging.getLogger(__name__)
SHADOW_SUFFIX = "__dpone_new"


class DuckDBLoader(Loader):
    dialect = DUCKDB

    def __init__(self, config: Mapping[str, Any], *, read_only: bool = False) -> None:
        self.filepath = str(config.get("filepath") or "dpone.duckdb")
        self.schema = str(config.get("default_target_schema") or "main")
        self.keep_staging = bool(config.get("keep_staging", False))
        self.staging_dir = config.get("staging_dir") or None
        self.conn = connect(self.filepath, read_only=read_only)
        self._data_errors = error_types()
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
        return {name: duckdb_type(col) for name, col in plan.columns.items()}

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
        fd, path = tempfile.mkstemp(prefix="dpone-duckdb-", suffix=".jsonl", dir=self.staging_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"\n".join(map(DEFAULT_CODEC.dumps, records)))
            try:
                self.conn.execute(ddl.load_json(staging, path, self._wanted(plan)))
            except self._data_errors as exc:
                raise DataError(
                    f"stream {plan.stream!r}: a record does not fit the table: {str(exc).splitlines()[0]}"
                ) from None
        finally:
            os.unlink(path)

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
