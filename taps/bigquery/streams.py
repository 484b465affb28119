"""A BigQuery table or query as a stream: FULL_TABLE (a new table version each read) and INCREMENTAL.

- FULL_TABLE of a table: every row through tabledata.list or a Storage Read API session (no query
  job); of a view or a query: `SELECT cols FROM (...)`. A read is not resumable mid-table (neither
  path has an order to resume by); each is a table version, activated after its last row, so a
  target can retire rows deleted in the source.
- INCREMENTAL: `SELECT cols FROM src WHERE rk >= @start ORDER BY rk`, the bookmark a typed query
  parameter; rows at the bookmark are sent again (never lost), and the bookmark advances at every
  STATE because rows come in its order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from dpone.state.records import Bookmark, TablePosition
from dpone.taps.bigquery import reader
from dpone.taps.bigquery.discovery import StreamSpec
from dpone.taps.bigquery.type_map import (
    bookmark_order,
    converter,
    parameter_value,
    replication_key_candidate,
    stream_schema,
    type_of,
)
from dpone.taps.framework.stream import ReadContext, Stream
from dpone_protocol.catalog import FULL_TABLE, INCREMENTAL
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError
from dpone_protocol.messages import ActivateVersionMessage


class ReadingTap(Protocol):
    """What a stream uses of its tap (BigQueryTap): the settings and the clients, made on first use."""

    config: Mapping[str, Any]
    redactor: Redactor
    page_size: int

    @property
    def client(self) -> Any: ...

    @property
    def storage(self) -> Any: ...

    @property
    def driver(self) -> Any: ...


_START = "dpone_start"  # the bookmark's query parameter


def _quote(name: str) -> str:
    # A flexible column name may hold nearly any character: escape what would end the quoting.
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class BigQueryStream(Stream):
    is_sorted = True  # INCREMENTAL reads order by the replication key

    def __init__(self, spec: StreamSpec, tap: ReadingTap) -> None:
        self.spec = spec
        self.tap = tap
        self.name = spec.name
        self.schema = stream_schema(spec.fields)
        self.key_properties = list(spec.key_properties)  # type: ignore[misc]
        self.replication_key = spec.replication_key
        self.valid_replication_keys = [f.name for f in spec.fields if replication_key_candidate(f)]  # type: ignore[misc]
        self.by_name = {f.name: f for f in spec.fields}
        self.mode = FULL_TABLE
        self.version: int | None = None
        self.committed: Bookmark | None = None

    def discovery_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"is-view": self.spec.kind not in ("TABLE", "SNAPSHOT", "CLONE")}
        if self.spec.table_name:
            metadata.update({"schema-name": self.spec.dataset, "table-name": self.spec.table_name})
        if self.spec.num_rows is not None and self.spec.kind == "TABLE":
            metadata["row-count"] = self.spec.num_rows
        return metadata

    def bookmark_key(self, value: Any) -> Any:
        return bookmark_order(value)

    # -- reading --------------------------------------------------------------------------------
    def records(self, ctx: ReadContext) -> Iterator[Any]:
        self.mode = ctx.replication_method
        self.committed = ctx.bookmark
        self.version = None
        fields = [self.by_name[name] for name in ctx.selected if name in self.by_name]
        missing = [name for name in ctx.selected if name not in self.by_name]
        if missing:
            raise ConfigError(
                f"stream {self.name!r}: selected columns {missing} no longer exist in {self.spec.label}; "
                "re-run discovery and update the catalog"
            )
        if ctx.replication_method == INCREMENTAL:
            yield from self._incremental(ctx, fields)
        else:
            yield from self._full_table(ctx, fields)

    def _full_table(self, ctx: ReadContext, fields: list[Any]) -> Iterator[Any]:
        committed = self.committed if isinstance(self.committed, TablePosition) else None
        version = int(time.time() * 1000)
        if committed is None or committed.version is None:
            # First read ever: the target learns the version before any row.
            yield ActivateVersionMessage(self.name, version)
        ctx.version = self.version = version
        tap = self.tap
        if self.spec.kind == "TABLE" and self.spec.table is not None:
            bqstorage = tap.storage if reader.use_storage_for_table(tap.config, self.spec.num_rows) else None
            yield from self._records(
                fields, lambda: reader.table_rows(tap.client, self.spec.table, fields, tap.page_size, bqstorage)
            )
        else:
            yield from self._query(fields, "", [])
        ctx.version = None
        # Rows of older versions (deleted in the source since) can now be removed downstream.
        yield ActivateVersionMessage(self.name, version)

    def _incremental(self, ctx: ReadContext, fields: list[Any]) -> Iterator[Any]:
        rk = ctx.replication_key
        if rk is None or rk not in self.by_name or not replication_key_candidate(self.by_name[rk]):
            raise ConfigError(
                f"stream {self.name!r}: replication key {rk!r} is not a column INCREMENTAL can bookmark "
                f"(one of {self.valid_replication_keys})"
            )
        kind = type_of(self.by_name[rk])
        where, params = "", []
        if ctx.start_value is not None:
            bigquery = self.tap.driver
            value = parameter_value(kind, ctx.start_value, self.name)
            where = f" WHERE {_quote(rk)} >= @{_START}"
            params = [bigquery.ScalarQueryParameter(_START, kind, value)]
        yield from self._query(fields, where, params, order_by=rk)

    def _query(self, fields: list[Any], where: str, params: list[Any], order_by: str | None = None) -> Iterator[Any]:
        tap = self.tap
        columns = ", ".join(_quote(f.name) for f in fields) or "1 AS _dpone_none"
        order = f" ORDER BY {_quote(order_by)}" if order_by else ""
        sql = f"SELECT {columns} FROM {self.spec.source}{where}{order}"
        read = reader.QueryRead(tap.client, sql, params, tap.page_size)
        always = str(tap.config.get("use_storage_api")) == reader.ALWAYS
        yield from self._records(fields, lambda: read.rows(tap.storage, always), read)

    def _records(
        self, fields: list[Any], start: Callable[[], reader.Rows], read: reader.QueryRead | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows `start()` reads as records; every driver error (at the start or mid-read) classified."""
        names = [f.name for f in fields]
        try:
            rows = start()
            plan = [(name, converter(f, rows.arrow)) for name, f in zip(names, fields, strict=True)]
            if all(fn is None for _, fn in plan):
                for values in rows:
                    yield dict(zip(names, values, strict=True))
                return
            for values in rows:
                yield {name: (v if fn is None else fn(v)) for (name, fn), v in zip(plan, values, strict=True)}
        except DponeError:
            raise
        except Exception as exc:  # google.api_core, google.auth, grpc and transport errors alike
            job = read.job if read is not None else None
            raise reader.read_error(exc, self.tap.redactor, f"reading {self.spec.label}", job) from None

    # -- bookmarks ------------------------------------------------------------------------------
    def position(self, final: bool) -> Bookmark | None:
        if self.mode == FULL_TABLE and self.version is not None:
            extra = self.committed.extra if isinstance(self.committed, TablePosition) else {}
            return TablePosition(self.name, self.version, None, extra)
        return None  # INCREMENTAL: the framework bookmarks the replication key
