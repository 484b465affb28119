"""A table or view of a database as a stream: FULL_TABLE resumable by key, INCREMENTAL with ties.

The server renders every row as JSON text (the dialect's `row_json`) next to a JSON array of the
row's bookmark key; the dialect streams the rows back as lines of bytes. The stream never decodes
a row: it cuts the row's JSON out of the line and yields it as an EncodedRecord, which the tap
frames into a RECORD, and keeps the key bytes of the last row for the bookmark (decoded only at
a checkpoint). Every query orders by the key it bookmarks, so the bookmark advances at every STATE.

- FULL_TABLE: ordered by the primary key; the bookmark is a TablePosition, whose `last_pk` lets
  a stopped read resume after the last row sent, in the same table version. ACTIVATE_VERSION
  opens a stream's first version and closes every complete read.
- INCREMENTAL: rows whose replication key is at or after the bookmark (ties are sent again,
  never lost), ordered by it; the bookmark is a StreamBookmark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, final

import orjson

from dpone.state.records import Bookmark, RawBookmark, StreamBookmark, TablePosition
from dpone.taps.framework.sql_dialect import FIELD_SEPARATOR, RowBlock, RowBlocks
from dpone.taps.framework.sql_discovery import SqlColumn, SqlTable, discovery_metadata, orderable, stream_schema
from dpone.taps.framework.stream import BatchSpec, EncodedLines, EncodedRecord, ReadContext, Stream, WrittenBatch
from dpone_protocol.batch_files import JsonlBatchWriter
from dpone_protocol.catalog import FULL_TABLE, INCREMENTAL
from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import ActivateVersionMessage, BatchEncoding

if TYPE_CHECKING:
    from dpone.taps.framework.sql_tap import SqlTap

SRC = "_dpone_src"  # the table's alias in every query: unlikely to clash with a column name
_NULL_KEY = b"[null]"  # NULL keys sort last and bookmark nothing
_BLOCK_BYTES = 1 << 20  # lines handed over at a time by a compiled read


class SqlStream(Stream):
    """Override `read` (calling this one for FULL_TABLE and INCREMENTAL) and `position` to add methods,
    `full_table_files` for a faster BATCH path; the methods marked final are the base's."""

    is_sorted = True  # every query orders by the key it bookmarks
    reads_selected = True  # every query selects the selected columns only

    def __init__(self, table: SqlTable, tap: SqlTap) -> None:
        self.table = table
        self.tap = tap
        self.dialect = tap.dialect
        self.name = table.stream_id
        self.key_properties = list(table.primary_key)  # type: ignore[misc]
        self.schema = stream_schema(table)
        # Columns INCREMENTAL can bookmark (ordered, compared by value); the user picks one.
        self.valid_replication_keys = [c.name for c in table.columns if orderable(c.schema)]  # type: ignore[misc]
        self.log = logging.getLogger(type(self).__module__)
        self.mode = FULL_TABLE
        self.committed: Bookmark = RawBookmark(self.name, {})
        self.last_key: bytes | None = None  # JSON array of the last row's key, as the server rendered it
        self.version: int | None = None  # the table version of a FULL_TABLE read
        self.read_key: str | None = None  # the replication key of an INCREMENTAL read
        self.start_value: Any = None
        self.json_nulls = 0  # rows whose JSON null went out as null (indistinguishable from SQL NULL)
        self.ctx: ReadContext | None = None

    def discovery_metadata(self) -> dict[str, Any]:
        return discovery_metadata(self.table)

    # -- reading --------------------------------------------------------------------
    @final
    def records(self, ctx: ReadContext) -> Iterator[Any]:
        self.ctx = ctx
        self.mode = ctx.replication_method
        self.committed = ctx.bookmark
        self.start_value = ctx.start_value
        self.last_key = self.version = self.read_key = None
        self.json_nulls = 0
        yield from self.read(ctx)
        if self.json_nulls:
            self.log.warning(
                "stream %s: %d rows held JSON null in a %s column; it is sent as null and lands as SQL NULL",
                self.name,
                self.json_nulls,
                self.dialect.json_columns,
            )

    def read(self, ctx: ReadContext) -> Iterator[Any]:
        if ctx.key_range is not None:
            yield from self.range_rows(ctx)
        elif ctx.replication_method == INCREMENTAL:
            yield from self.incremental(ctx)
        else:
            yield from self.full_table(ctx)

    def full_table(self, ctx: ReadContext) -> Iterator[Any]:
        pk = self.table.primary_key
        committed = self.committed if isinstance(self.committed, TablePosition) else None
        resume = committed.last_pk if committed is not None and pk else None
        version = committed.version if committed is not None and resume is not None else None
        if version is None:
            version = int(time.time() * 1000)
            if committed is None or committed.version is None:
                # First sync ever: the target learns the version before any row.
                yield ActivateVersionMessage(self.name, version)
        self.version = version
        ctx.set_version(version)
        keys = [self.column(k) for k in pk]
        where = ""
        params: list[Any] = []
        if resume is not None:
            if len(resume) != len(pk):
                raise ConfigError(f"stream {self.name!r}: saved last_pk does not match the primary key {pk}")
            condition, params = self.dialect.after_key(keys, resume)
            where = f" WHERE {condition}"
            self.log.info("stream %s: resuming the full table after primary key %s", self.name, resume)
        files = self.full_table_files(ctx, where, params) if ctx.batch is not None else None
        yield from files if files is not None else self.read_rows(ctx.selected, keys, where, params)
        ctx.set_version(None)
        # Rows of older versions (deleted in the source since) can now be removed downstream.
        yield ActivateVersionMessage(self.name, version)

    @final
    def range_rows(self, ctx: ReadContext) -> Iterator[Any]:
        """The rows of one key range, in no order: a partitioned load commits the range whole, so
        there is no position to resume from and nothing to sort."""
        key_range = ctx.key_range
        assert key_range is not None
        if not self.dialect.key_ranges:
            raise ConfigError(f"stream {self.name!r}: {self.tap.name} cannot read key ranges")
        if key_range.column not in self.schema["properties"]:
            raise ConfigError(f"stream {self.name!r}: the key range's column {key_range.column!r} is not in the table")
        condition, params = self.dialect.in_key_range(self.column(key_range.column), key_range)
        yield from self.read_rows(ctx.selected, [], f" WHERE {condition}", params)

    def full_table_files(self, ctx: ReadContext, where: str, params: list[Any]) -> Iterator[WrittenBatch] | None:
        """BATCH output of a full table written straight into files (e.g. key ranges read in parallel);
        None reads it row by row. Each file's last key goes to `last_key` before it is yielded."""
        return None

    def incremental(self, ctx: ReadContext) -> Iterator[EncodedRecord]:
        rk = ctx.replication_key
        if rk is None or rk not in self.schema["properties"]:
            raise ConfigError(f"stream {self.name!r}: replication key {rk!r} is not a column of the table")
        self.read_key = rk
        key = self.column(rk)
        where = ""
        params: list[Any] = []
        if ctx.start_value is not None:
            condition, params = self.dialect.at_or_after(key, ctx.start_value)
            where = f" WHERE {condition}"
        yield from self.read_rows(ctx.selected, [key], where, params)

    @final
    def column(self, name: str) -> str:
        """A column of the table in a query: its quoted name on the table's alias."""
        return f"{SRC}.{self.dialect.quoting.q(name)}"

    @final
    def select_sql(self, selected: list[str], keys: list[str] | None, where: str, order: list[str]) -> tuple[str, bool]:
        """The query of a read, and whether each row ends with a JSON-null flag.

        Each row selects its JSON text, then (unless `keys` is None) the JSON array of `keys`."""
        row, joins = self.dialect.row_json(self._rendered(selected))
        fields = [row] if keys is None else [row, self.key_json(keys)]
        flag = self._json_null_flag(selected)
        if flag is not None:
            fields.append(flag)
        order_by = f" ORDER BY {', '.join(order)}" if order else ""
        return f"SELECT {', '.join(fields)} FROM {self.table.qualified} AS {SRC}{joins}{where}{order_by}", bool(flag)

    @final
    def read_rows(self, selected: list[str], keys: list[str], where: str, params: list[Any]) -> Iterator[Any]:
        """The rows ordered by `keys`, as the dialect's compiled row path writes them where it can (whole
        lines or files), else each row's JSON as it came from the server; the last key is kept."""
        ctx = self.ctx
        if ctx is not None and (ctx.envelope is not None or ctx.batch is not None):
            compiled, why = self.dialect.compiled_rows(
                self.tap.conn, self._columns(selected), self._key_columns(keys), SRC
            )
        else:
            compiled, why = None, "a stream map takes each record"
        if compiled is None:
            self.log.info("stream %s: rows rendered as JSON by the server (%s)", self.name, why)
            yield from self._json_rows(selected, keys, where, params)
            return
        self.log.info("stream %s: rows encoded from COPY text", self.name)
        order_by = f" ORDER BY {', '.join(keys)}" if keys else ""
        sql = f"SELECT {compiled.select_list} FROM {self.table.qualified} AS {SRC}{where}{order_by}"
        assert ctx is not None
        try:
            with compiled.open(self.tap.conn, sql, params) as rows:
                if ctx.batch is not None:
                    assert ctx.batch_writer is not None
                    yield from self._compiled_files(rows, ctx.batch, ctx.batch_writer)
                else:
                    yield from self._compiled_lines(rows, ctx)
        except self.dialect.driver_errors() as exc:
            raise self.dialect.read_error(exc, self.table, self.tap.redactor) from None

    def _compiled_lines(self, rows: RowBlocks, ctx: ReadContext) -> Iterator[EncodedLines]:
        assert ctx.envelope is not None
        head, tail = ctx.envelope
        # A block at most as long as the STATE cadence, so checkpoints come as often as row by row.
        cap = int(self.tap.config.get("state_every_rows") or 10_000)
        while (block := rows.read(head, tail, cap, _BLOCK_BYTES)) is not None:
            self._took(block)
            yield EncodedLines(block.data, block.rows)

    def _compiled_files(self, rows: RowBlocks, spec: BatchSpec, writer: JsonlBatchWriter) -> Iterator[WrittenBatch]:
        """BATCH lines into the loop's file writer; a file is closed here when full, its last key
        bookmarking it. The last file is the loop's to close, at the end of the read, as row by row."""
        encoding = BatchEncoding("jsonl", spec.compression)
        every = float(self.tap.config.get("state_every_seconds") or 60)
        opened = time.monotonic()
        while (block := rows.read(b"", b"\n", writer.max_rows - writer.rows, _BLOCK_BYTES)) is not None:
            writer.write_lines(block.data, block.rows)
            self._took(block)
            # Closed when full, or when it has been open state_every_seconds (a slow read still checkpoints).
            if writer.full() or time.monotonic() - opened >= every:
                count = writer.rows
                yield WrittenBatch(writer.close(), count, encoding)
                opened = time.monotonic()

    def _took(self, block: RowBlock) -> None:
        if block.last_key is not None:
            self.last_key = block.last_key
        self.json_nulls += block.json_nulls

    def _json_rows(self, selected: list[str], keys: list[str], where: str, params: list[Any]) -> Iterator[Any]:
        sql, flagged = self.select_sql(selected, keys, where, keys)
        try:
            with self.dialect.rows(self.tap.conn, sql, params) as rows:
                for block in rows:
                    data = bytes(block)
                    sep = data.index(FIELD_SEPARATOR)
                    end = len(data)
                    if flagged:
                        end = data.rindex(FIELD_SEPARATOR)
                        if data[end + 1 : end + 2] == b"t":
                            self.json_nulls += 1
                    if keys:
                        key = data[sep + 1 : end].rstrip(b"\n")
                        if key != _NULL_KEY:
                            self.last_key = key
                    yield EncodedRecord(data[:sep])
        except self.dialect.driver_errors() as exc:
            raise self.dialect.read_error(exc, self.table, self.tap.redactor) from None

    def _columns(self, selected: list[str]) -> list[SqlColumn]:
        by_name = {c.name: c for c in self.table.columns}
        missing = [name for name in selected if name not in by_name]
        if missing:
            raise ConfigError(
                f"stream {self.name!r}: selected columns {missing} no longer exist in "
                f"{self.table.schema}.{self.table.name}; re-run discovery and update the catalog"
            )
        return [by_name[name] for name in selected]

    @final
    def key_json(self, keys: list[str]) -> str:
        """The select expression of the JSON array of the key `keys` (expressions), each value exact."""
        return self.dialect.key_json(
            [key if column is None else self.dialect.key_value(column, key) for key, column in self._key_columns(keys)]
        )

    def _key_columns(self, keys: list[str]) -> list[tuple[str, SqlColumn | None]]:
        """Each key expression with its column, when it is one (XMIN's key is an expression)."""
        by_expression = {self.column(c.name): c for c in self.table.columns}
        return [(key, by_expression.get(key)) for key in keys]

    def _rendered(self, selected: list[str]) -> list[tuple[str, str]]:
        return [(self.dialect.column_sql(column, SRC), column.name) for column in self._columns(selected)]

    def _json_null_flag(self, selected: list[str]) -> str | None:
        chosen = set(selected)
        tests = [
            test
            for c in self.table.columns
            if c.name in chosen and (test := self.dialect.json_null_test(c, self.column(c.name))) is not None
        ]
        return self.dialect.any_true(tests) if tests else None

    # -- bookmarks ------------------------------------------------------------------
    @final
    def key_values(self) -> list[Any] | None:
        """The last row's key, decoded (at a checkpoint, not per row)."""
        return None if self.last_key is None else list(orjson.loads(self.last_key))

    def position(self, final: bool) -> Bookmark | None:
        key = self.key_values()
        if self.mode == FULL_TABLE and self.version is not None:
            committed = self.committed if isinstance(self.committed, TablePosition) else None
            # A finished read has no resume point; before its first row it keeps the one it started from.
            last_pk = None if final else key if key is not None else committed.last_pk if committed else None
            return TablePosition(self.name, self.version, last_pk, committed.extra if committed else {})
        if self.mode == INCREMENTAL and self.read_key is not None:
            extra = self.committed.extra if isinstance(self.committed, StreamBookmark) else {}
            value = key[0] if key is not None else self.start_value
            return StreamBookmark(self.name, self.read_key, value, extra)
        return None
