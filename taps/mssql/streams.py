"""tap-mssql streams: the SQL stream base (FULL_TABLE, INCREMENTAL) plus what SQL Server offers.

- ROWVERSION: rows whose rowversion column is past the bookmark and below MIN_ACTIVE_ROWVERSION()
  read when the run starts (every row below it is committed; newer ones wait for the next run), in
  rowversion order; the bookmark is the last value read, as a bigint.
- LOG_BASED: SQL Server CDC (cdc.py), the position an LSN as hex text.
- CHANGE_TRACKING: SQL Server Change Tracking (change_tracking.py), the position a version.

LOG_BASED and CHANGE_TRACKING need a primary key (checked while the run is planned) and add
`_sdc_deleted_at` to the schema: a delete is sent as the key with the time it was seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dpone.state.records import (
    Bookmark,
    CdcLsnPosition,
    ChangeVersionPosition,
    LsnPosition,
    RowversionPosition,
)
from dpone.taps.framework.sql_discovery import SqlTable
from dpone.taps.framework.sql_stream import SqlStream
from dpone.taps.framework.stream import EncodedRecord, ReadContext
from dpone.taps.mssql.dialect import MssqlDialect
from dpone.taps.mssql.type_map import MssqlColumn
from dpone_protocol.errors import ConfigError

if TYPE_CHECKING:
    from dpone.taps.mssql.tap import MssqlTap

ROWVERSION = "ROWVERSION"
LOG_BASED = "LOG_BASED"
CHANGE_TRACKING = "CHANGE_TRACKING"
_MIN_ACTIVE = "SELECT CAST(MIN_ACTIVE_ROWVERSION() AS BIGINT)"
_DELETED_AT = {"_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}


class MssqlStream(SqlStream):
    tap: MssqlTap
    dialect: MssqlDialect

    def __init__(self, table: SqlTable, tap: MssqlTap) -> None:
        super().__init__(table, tap)
        # Columns render, key and compare by their type, which only the table knows.
        self.dialect = tap.dialect.for_table(table)
        self.change_done: bytes | None = None  # the last change position whose changes were all sent
        self.change_end: str | int | None = None  # where a change read ended (its bound)
        self.rowversion_bound = 0

    def stream_schema(self, method: str, schema: dict[str, Any]) -> dict[str, Any]:
        # Checked while the run is planned, before any SCHEMA: a target creates nothing.
        if method in (LOG_BASED, CHANGE_TRACKING):
            if not self.table.primary_key:
                raise ConfigError(
                    f"stream {self.name!r}: {method} needs a primary key to send updates and deletes by key "
                    "(or use FULL_TABLE, INCREMENTAL or ROWVERSION)"
                )
            return {**schema, "properties": {**schema["properties"], **_DELETED_AT}}
        if method == ROWVERSION:
            self.rowversion_column()
        return schema

    def rowversion_column(self) -> MssqlColumn:
        found = [c for c in self.table.columns if isinstance(c, MssqlColumn) and c.is_rowversion]
        if not found:
            raise ConfigError(
                f"stream {self.name!r}: ROWVERSION needs a rowversion column, and {self.table.qualified} has none "
                f"(ALTER TABLE {self.table.qualified} ADD [row_version] rowversion adds one)"
            )
        return found[0]

    # -- reading --------------------------------------------------------------------
    def read(self, ctx: ReadContext) -> Iterator[Any]:
        self.change_done = self.change_end = None
        if ctx.replication_method == ROWVERSION:
            yield from self._rowversion(ctx)
        elif ctx.replication_method == LOG_BASED:
            from dpone.taps.mssql import cdc  # noqa: PLC0415 - only LOG_BASED needs it

            yield from cdc.read_changes(self, ctx)
        elif ctx.replication_method == CHANGE_TRACKING:
            from dpone.taps.mssql import change_tracking  # noqa: PLC0415

            yield from change_tracking.read_changes(self, ctx)
        else:
            yield from super().read(ctx)

    def _rowversion(self, ctx: ReadContext) -> Iterator[EncodedRecord]:
        column = self.rowversion_column()
        ref = self.column(column.name)
        start = ctx.bookmark.rowversion if isinstance(ctx.bookmark, RowversionPosition) else None
        try:
            self.rowversion_bound = int(self.tap.conn.execute(_MIN_ACTIVE).fetchone()[0])
        except self.dialect.driver_errors() as exc:
            raise self.dialect.read_error(exc, self.table, self.tap.redactor) from None
        conditions = [f"{ref} < {column.param}"]
        params: list[Any] = [self.rowversion_bound]
        if start is not None:
            conditions.insert(0, f"{ref} > {column.param}")
            params.insert(0, start)
        self.log.info("stream %s: rowversion after %s, below %s", self.name, start, self.rowversion_bound)
        yield from self.read_rows(ctx.selected, [ref], f" WHERE {' AND '.join(conditions)}", params)

    # -- bookmarks ------------------------------------------------------------------
    def position(self, final: bool) -> Bookmark | None:
        extra = getattr(self.committed, "extra", {})
        if self.mode == ROWVERSION:
            key = self.key_values()
            committed = self.committed.rowversion if isinstance(self.committed, RowversionPosition) else None
            value = key[0] if key is not None else committed
            return None if value is None else RowversionPosition(self.name, int(value), extra)
        if self.mode == LOG_BASED:
            lsn = self.change_end if self.change_end is not None else self.change_done
            if lsn is None:
                return None
            extra = extra if isinstance(self.committed, (CdcLsnPosition, LsnPosition)) else {}
            return CdcLsnPosition(self.name, lsn.decode() if isinstance(lsn, bytes) else str(lsn), extra)
        if self.mode == CHANGE_TRACKING:
            version = self.change_end if self.change_end is not None else self.change_done
            if version is None:
                return None
            extra = extra if isinstance(self.committed, ChangeVersionPosition) else {}
            return ChangeVersionPosition(self.name, int(version), extra)
        return super().position(final)
