"""tap-postgres streams: FULL_TABLE (resumable by primary key), INCREMENTAL and XMIN.

The server renders every row as JSON (row_to_json over lossless expressions) and streams it
out with COPY; the tap never decodes a row: it frames the bytes and remembers the key of
the last row for its bookmark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson

from dpone_drivers.postgres import classify, driver_errors
from dpone_protocol.catalog import FULL_TABLE, INCREMENTAL
from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import ActivateVersionMessage
from taps.framework.stream import BatchSpec, EncodedRecord, ReadContext, Stream, WrittenBatch
from taps.postgres.discovery import Table
from taps.postgres.range_reads import read_in_ranges

log = logging.getLogger(__name__)
XMIN = "XMIN"
LOG_BASED = "LOG_BASED"
_COPY_OUT = "(FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e')"
XID_SPACE = 2**32
# Aliases unlikely to clash with column names.
_SRC = "_dpone_src"
_ROW = "_dpone_row"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _orderable(schema: dict[str, Any]) -> bool:
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or [])
    if "array" in types or "object" in types:
        return False
    return bool(types & {"integer", "number"}) or schema.get("format") in ("date-time", "date", "singer.decimal")


class PostgresStream(Stream):
    def __init__(self, table: Table, tap: Any) -> None:
        self.table = table
        self.tap = tap
        self.name = table.stream_id
        self.key_properties = list(table.primary_key)  # type: ignore[misc]
        self.schema = {"type": "object", "properties": {c.name: c.schema for c in table.columns}}
        self.is_sorted = True  # every query orders by the key it bookmarks
        self._last_key: bytes | None = None
        self._progress: dict[str, Any] = {}
        self._mode = FULL_TABLE
        self._xmin_horizon = 0
        self._json_nulls = 0  # rows whose JSON null went out as null (indistinguishable from SQL NULL)
        # Columns INCREMENTAL can bookmark (ordered, compared by value); the user picks one.
        self.valid_replication_keys = [c.name for c in table.columns if _orderable(c.schema)]  # type: ignore[misc]

    def discovery_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "is-view": self.table.is_view,
            "schema-name": self.table.schema,
            "table-name": self.table.name,
        }
        if self.table.row_estimate is not None:  # unknown (never analysed): left out rather than 0
            metadata["row-count"] = self.table.row_estimate
        return metadata

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

    # -- bookmarks ------------------------------------------------------------------
    def bookmark_progress(self, final: bool) -> dict[str, Any]:
        if self._last_key is not None:
            key = orjson.loads(self._last_key)
            if self._mode == FULL_TABLE:
                self._progress["last_pk"] = None if final else key
            elif self._mode == XMIN:
                # Never past the oldest transaction still open when the read started: it may commit later.
                self._progress["xmin"] = min(key[0], self._xmin_horizon)
            elif self._mode == INCREMENTAL and key[0] is not None:  # NULL keys sort last; they bookmark nothing
                self._progress["replication_key_value"] = key[0]
        elif final and self._mode == FULL_TABLE:
            self._progress["last_pk"] = None
        return dict(self._progress)

    # -- reading --------------------------------------------------------------------
    def records(self, ctx: ReadContext) -> Iterator[Any]:
        method = ctx.replication_method
        self._mode = XMIN if method == XMIN else method
        self._last_key = None
        self._progress = {}
        self._json_nulls = 0
        if method == LOG_BASED:
            from taps.postgres.cdc import read_changes  # noqa: PLC0415 - only LOG_BASED needs it

            yield from read_changes(self, ctx)
        elif method == XMIN:
            yield from self._xmin(ctx)
        elif method == INCREMENTAL:
            yield from self._incremental(ctx)
        else:
            yield from self._full_table(ctx)
        if self._json_nulls:
            log.warning(
                "stream %s: %d rows held JSON null in a json/jsonb column; it is sent as null and lands as SQL NULL",
                self.name,
                self._json_nulls,
            )

    def _json_null_sql(self, selected: list[str]) -> str | None:
        """True for a row whose selected json/jsonb column holds JSON null (sent as null, like SQL NULL)."""
        tests = []
        for c in self.table.columns:
            if c.name in selected and "object" in (c.schema.get("type") or []):
                column = f"{_SRC}.{q(c.name)}"
                # jsonb renders as itself; json goes through its line-break rewrite.
                tests.append(
                    f"{column} = 'null'::jsonb" if c.expression == q(c.name) else f"json_typeof({column}) = 'null'"
                )
        return f"coalesce({' OR '.join(tests)}, false)" if tests else None

    def _columns_sql(self, selected: list[str]) -> str:
        by_name = {c.name: c for c in self.table.columns}
        missing = [name for name in selected if name not in by_name]
        if missing:
            raise ConfigError(
                f"stream {self.name!r}: selected columns {missing} no longer exist in "
                f"{self.table.schema}.{self.table.name}; re-run discovery and update the catalog"
            )
        chosen = [by_name[name] for name in selected]
        return ", ".join(f"{c.expression.replace(q(c.name), f'{_SRC}.' + q(c.name))} AS {q(c.name)}" for c in chosen)

    def _copy(self, selected: list[str], keys: list[str], where: str, params: list[Any]) -> Iterator[EncodedRecord]:
        key_sql = ", ".join(keys) if keys else "NULL"
        order = f" ORDER BY {', '.join(keys)}" if keys else ""
        flag = self._json_null_sql(selected)
        sql = (
            f"SELECT row_to_json({_ROW})::text, json_build_array({key_sql})::text{f', {flag}' if flag else ''} "
            f"FROM {self.table.qualified} AS {_SRC} CROSS JOIN LATERAL (SELECT {self._columns_sql(selected)}) "
            f"AS {_ROW}{where}{order}"
        )
        try:
            with self.tap.conn.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT {_COPY_OUT}", params or None) as copy:
                for block in copy:
                    data = bytes(block)
                    sep = data.index(b"\x1f")
                    end = len(data)
                    if flag:
                        end = data.rindex(b"\x1f")
                        if data[end + 1 : end + 2] == b"t":
                            self._json_nulls += 1
                    if keys:
                        key = data[sep + 1 : end].rstrip(b"\n")
                        if key != b"[null]":  # NULL keys sort last and bookmark nothing
                            self._last_key = key
                    yield EncodedRecord(data[:sep])
        except driver_errors() as exc:
            doing = f"reading {self.table.schema}.{self.table.name}"
            if "permission denied" in str(exc):
                text = self.tap.redactor(" ".join(str(exc).split()))
                grant = f"GRANT SELECT ON {self.table.qualified} TO the tap's user"
                raise ConfigError(f"{doing}: {text} ({grant})") from None
            raise classify(exc, self.tap.redactor, doing) from None

    def _full_table(self, ctx: ReadContext) -> Iterator[Any]:
        pk = self.table.primary_key
        resume = ctx.bookmark.get("last_pk") if pk else None
        version = ctx.bookmark.get("version") if resume is not None else None
        if version is None:
            version = int(time.time() * 1000)
            if "version" not in ctx.bookmark:
                # First sync ever: the target learns the version before any row.
                yield ActivateVersionMessage(self.name, version)
        ctx.version = version
        self._progress["version"] = version
        keys = [f"{_SRC}.{q(k)}" for k in pk]
        where, params = "", []
        if resume is not None:
            if len(resume) != len(pk):
                raise ConfigError(f"stream {self.name!r}: saved last_pk does not match the primary key {pk}")
            where = f" WHERE ({', '.join(keys)}) > ({', '.join(['%s'] * len(pk))})"
            params = list(resume)
            log.info("stream %s: resuming the full table after primary key %s", self.name, resume)
        connections = int(self.tap.config.get("batch_read_connections") or 1)
        if ctx.batch is not None and self._integer_key() is not None:
            yield from self._ranges_into_files(ctx, ctx.batch, where, params, connections)
        else:
            yield from self._copy(ctx.selected, keys, where, params)
        ctx.version = None
        # Rows of older versions (deleted in the source since) can now be removed downstream.
        yield ActivateVersionMessage(self.name, version)

    def _integer_key(self) -> str | None:
        """The primary key's column when it is one integer column: the table can be read in ranges."""
        pk = self.table.primary_key
        if len(pk) != 1:
            return None
        types = self.schema["properties"][pk[0]].get("type")
        return pk[0] if types == "integer" or (isinstance(types, list) and "integer" in types) else None

    def _ranges_into_files(
        self, ctx: ReadContext, spec: BatchSpec, resume_where: str, params: list[Any], connections: int
    ) -> Iterator[WrittenBatch]:
        key = self._integer_key()
        assert key is not None
        column = f"{_SRC}.{q(key)}"
        bounds = f"SELECT min({column}), max({column}) FROM {self.table.qualified} AS {_SRC}{resume_where}"
        flag = self._json_null_sql(ctx.selected)
        select = (
            f"SELECT row_to_json({_ROW})::text{f', {flag}' if flag else ''} FROM {self.table.qualified} AS {_SRC} "
            f"CROSS JOIN LATERAL (SELECT {self._columns_sql(ctx.selected)}) AS {_ROW} "
            f"WHERE {column} BETWEEN %s AND %s ORDER BY {column}"
        )

        def on_file(last_key: bytes, json_nulls: int) -> None:
            self._last_key = last_key
            self._json_nulls += json_nulls

        yield from read_in_ranges(
            self.tap.conn,
            self.tap.new_connection,
            f"COPY ({select}) TO STDOUT {_COPY_OUT}",
            (bounds, params),
            key,
            spec,
            connections,
            self.tap.redactor,
            on_file,
            flagged=flag is not None,
        )

    def _incremental(self, ctx: ReadContext) -> Iterator[EncodedRecord]:
        rk = ctx.replication_key
        if rk is None or rk not in self.schema["properties"]:
            raise ConfigError(f"stream {self.name!r}: replication key {rk!r} is not a column of the table")
        where, params = "", []
        if ctx.start_value is not None:
            # >= : rows sharing the bookmark value are sent again rather than lost.
            where, params = f" WHERE {_SRC}.{q(rk)} >= %s", [ctx.start_value]
        self._progress["replication_key"] = rk
        yield from self._copy(ctx.selected, [f"{_SRC}.{q(rk)}"], where, params)

    def _xmin(self, ctx: ReadContext) -> Iterator[EncodedRecord]:
        xmin_expr = f"{_SRC}.xmin::text::bigint"
        start = ctx.bookmark.get("xmin")
        horizon = self.tap.conn.execute(
            "SELECT txid_snapshot_xmin(txid_current_snapshot()) %% %s", (XID_SPACE,)
        ).fetchone()[0]
        self._xmin_horizon = int(horizon)
        if start is not None and int(start) > self._xmin_horizon:
            # Transaction ids wrapped around since the bookmark: xmin can no longer be compared.
            log.warning(
                "stream %s: transaction ids wrapped around since the last run; re-reading the whole table", self.name
            )
            start = None
        where, params = ("", []) if start is None else (f" WHERE {xmin_expr} >= %s", [int(start)])
        yield from self._copy(ctx.selected, [xmin_expr], where, params)
