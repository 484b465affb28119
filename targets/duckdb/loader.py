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
from targets.duckdb.type_map import duckdb_type, holds, normalize, widens
from targets.framework.loader import Loader, StreamPlan

log = logging.getLogger(__name__)
SHADOW_SUFFIX = "__dpone_new"


class DuckDBLoader(Loader):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.filepath = str(config.get("filepath") or "dpone.duckdb")
        self.schema = str(config.get("default_target_schema") or "main")
        self.keep_staging = bool(config.get("keep_staging", False))
        self.staging_dir = config.get("staging_dir") or None
        self.conn = connect(self.filepath)
        self._data_errors = error_types()
        self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ddl.q(self.schema)}")

    def _table(self, name: str) -> str:
        return ddl.qualified(self.schema, name)

    def _existing_columns(self, table: str) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.schema, table],
        ).fetchall()
        return {name: dtype for name, dtype in rows}

    def _wanted(self, plan: StreamPlan) -> dict[str, str]:
        return {name: duckdb_type(col) for name, col in plan.columns.items()}

    def ensure_table(self, plan: StreamPlan, table: str | None = None) -> None:
        name = table or plan.table
        wanted = self._wanted(plan)
        existing = self._existing_columns(name)
        if not existing:
            self.conn.execute(ddl.create_table(self._table(name), wanted))
            log.info("created table %s.%s", self.schema, name)
            return
        lowered = {k.lower(): k for k in existing}
        statements = []
        for column, type_ in wanted.items():
            current_name = lowered.get(column.lower())
            if current_name is None:
                statements.append(ddl.add_column(self._table(name), column, type_))
                continue
            current = existing[current_name]
            if holds(current, type_):
                continue
            if widens(current, type_):
                statements.append(ddl.alter_type(self._table(name), current_name, type_))
                continue
            raise DataError(
                f"stream {plan.stream!r}: column {column!r} is {normalize(current)} in {self.schema}.{name} "
                f"but the stream now sends {type_}, which it cannot hold; alter or rename the column, "
                f"or load into another table (table_name_map)"
            )
        if statements:
            self.conn.execute("BEGIN")
            try:
                for sql in statements:
                    log.info("schema change on %s.%s: %s", self.schema, name, sql)
                    self.conn.execute(sql)
                self.conn.execute("COMMIT")
            except Exception:
                self.conn.execute("ROLLBACK")
                raise

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
        self.conn.execute("BEGIN")
        try:
            if plan.merges:
                self.conn.execute(ddl.delete_matching(target, staging, plan.key_properties))
            where = "_sdc_deleted_at IS NULL" if deleted and plan.merges else ""
            self.conn.execute(ddl.insert_from(target, staging, columns, where))
            self.conn.execute("COMMIT")
        except Exception:
            self.conn.execute("ROLLBACK")
            raise

    def cleanup(self, plan: StreamPlan, staging: str) -> None:
        if not self.keep_staging:
            self.conn.execute(f"DROP TABLE IF EXISTS {staging}")

    def begin_replace(self, plan: StreamPlan) -> str:
        shadow = f"{plan.table}{SHADOW_SUFFIX}"
        self.conn.execute(f"DROP TABLE IF EXISTS {self._table(shadow)}")
        self.conn.execute(ddl.create_table(self._table(shadow), self._wanted(plan)))
        return shadow

    def swap(self, plan: StreamPlan, shadow: str) -> None:
        self.conn.execute("BEGIN")
        try:
            self.conn.execute(f"DROP TABLE IF EXISTS {self._table(plan.table)}")
            self.conn.execute(f"ALTER TABLE {self._table(shadow)} RENAME TO {ddl.q(plan.table)}")
            self.conn.execute("COMMIT")
        except Exception:
            self.conn.execute("ROLLBACK")
            raise
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
        self.conn.close()
