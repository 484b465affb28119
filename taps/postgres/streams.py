"""tap-postgres streams: the SQL stream base (FULL_TABLE, INCREMENTAL) plus what only PostgreSQL has.

- XMIN: rows whose `xmin` (the transaction that wrote the row version) is at or after the bookmark.
- LOG_BASED: changes from a logical replication slot (cdc.py).
- BATCH output of a full table with an integer primary key: key ranges read over several
  connections in one exported snapshot, straight into the files (range_reads.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dpone.state.records import Bookmark, LsnPosition, XminPosition
from dpone.taps.framework.sql_stream import SRC, SqlStream
from dpone.taps.framework.stream import EncodedRecord, ReadContext, WrittenBatch
from dpone.taps.postgres.dialect import COPY_OUT
from dpone.taps.postgres.range_reads import RangeQuery, read_in_ranges
from dpone_protocol.errors import ConfigError

XMIN = "XMIN"
LOG_BASED = "LOG_BASED"
XID_SPACE = 2**32


class PostgresStream(SqlStream):
    xmin_horizon = 0  # the oldest transaction still open when an XMIN read started
    lsn: int | None = None  # where a LOG_BASED read ended (or its snapshot's changes begin)

    def stream_schema(self, method: str, schema: dict[str, Any]) -> dict[str, Any]:
        if method != LOG_BASED:
            return schema
        if not self.table.primary_key:
            # Checked while the run is planned, before any SCHEMA: a target creates nothing.
            raise ConfigError(
                f"stream {self.name!r}: LOG_BASED needs a primary key to apply updates and deletes "
                "(or use FULL_TABLE / INCREMENTAL)"
            )
        extra = {
            "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
            "_sdc_lsn": {"type": ["integer", "null"]},
        }
        return {**schema, "properties": {**schema["properties"], **extra}}

    def read(self, ctx: ReadContext) -> Iterator[Any]:
        self.lsn = None
        if ctx.key_range is not None:
            yield from self.range_rows(ctx)  # a partitioned load: the range's rows, whatever the method
        elif ctx.replication_method == LOG_BASED:
            from dpone.taps.postgres.cdc import read_changes  # noqa: PLC0415 - only LOG_BASED needs it

            yield from read_changes(self, ctx)
        elif ctx.replication_method == XMIN:
            yield from self._xmin(ctx)
        else:
            yield from super().read(ctx)

    def position(self, final: bool) -> Bookmark | None:
        if self.mode == XMIN:
            key = self.key_values()
            if key is None:
                return None
            extra = self.committed.extra if isinstance(self.committed, XminPosition) else {}
            # Never past the oldest transaction still open when the read started: it may commit later.
            return XminPosition(self.name, min(key[0], self.xmin_horizon), extra)
        if self.mode == LOG_BASED:
            if self.lsn is None:
                return None
            extra = self.committed.extra if isinstance(self.committed, LsnPosition) else {}
            return LsnPosition(self.name, self.lsn, extra)
        return super().position(final)

    def _integer_key(self) -> str | None:
        """The primary key's column when it is one integer column: the table can be read in ranges."""
        pk = self.table.primary_key
        if len(pk) != 1:
            return None
        types = self.schema["properties"][pk[0]].get("type")
        return pk[0] if types == "integer" or (isinstance(types, list) and "integer" in types) else None

    def full_table_files(self, ctx: ReadContext, where: str, params: list[Any]) -> Iterator[WrittenBatch] | None:
        key = self._integer_key()
        if key is None or ctx.batch is None:
            return None
        column = self.column(key)
        bounds = f"SELECT min({column}), max({column}) FROM {self.table.qualified} AS {SRC}{where}"
        in_range = f" WHERE {column} BETWEEN %s AND %s"
        compiled, why = self.dialect.compiled_rows(
            self.tap.conn, self._columns(ctx.selected), self._key_columns([column]), SRC
        )
        if compiled is not None:
            self.log.info("stream %s: rows encoded from COPY text", self.name)
            sql = f"SELECT {compiled.select_list} FROM {self.table.qualified} AS {SRC}{in_range} ORDER BY {column}"
            query = RangeQuery(sql, key, compiled=compiled)
        else:
            self.log.info("stream %s: rows rendered as JSON by the server (%s)", self.name, why)
            select, flagged = self.select_sql(ctx.selected, None, in_range, [column])
            query = RangeQuery(f"COPY ({select}) TO STDOUT {COPY_OUT}", key, flagged)

        def on_file(last_key: bytes, json_nulls: int) -> None:
            self.last_key = last_key
            self.json_nulls += json_nulls

        return read_in_ranges(
            self.tap.conn,
            self.tap.new_connection,
            query,
            (bounds, params),
            ctx.batch,
            int(self.tap.config.get("batch_read_connections") or 1),
            self.tap.redactor,
            on_file,
        )

    def _xmin(self, ctx: ReadContext) -> Iterator[EncodedRecord]:
        xmin_expr = f"{SRC}.xmin::text::bigint"
        start = ctx.bookmark.xmin if isinstance(ctx.bookmark, XminPosition) else None
        horizon = self.tap.conn.execute(
            "SELECT txid_snapshot_xmin(txid_current_snapshot()) %% %s", (XID_SPACE,)
        ).fetchone()[0]
        self.xmin_horizon = int(horizon)
        if start is not None and start > self.xmin_horizon:
            # Transaction ids wrapped around since the bookmark: xmin can no longer be compared.
            self.log.warning(
                "stream %s: transaction ids wrapped around since the last run; re-reading the whole table", self.name
            )
            start = None
        where, params = ("", []) if start is None else (f" WHERE {xmin_expr} >= %s", [start])
        yield from self.read_rows(ctx.selected, [xmin_expr], where, params)
