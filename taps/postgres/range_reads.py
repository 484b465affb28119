"""A full table in BATCH mode: read in primary-key ranges over several connections, straight into files.

Rendering rows as JSON is most of what a full-table read costs the server, and one backend does
it on one core. Here each range of an integer primary key is read by its own connection (its own
backend), all of them in one snapshot exported by the tap's connection, so together they see the
table exactly as one transaction would. Rows go from COPY into the batch files as they arrive,
written by the compiled row path (copy_lines.py) or as the server's JSON: the tap neither frames
nor decodes them.

Files are announced in key order: a range's files wait until every range before it is done, so
the bookmark (the key of the last row of the last file announced) never passes a row that is not
in an announced file, and a run that stops resumes after it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from dpone.taps.framework.sql_dialect import CompiledRows
from dpone.taps.framework.stream import BatchSpec, WrittenBatch
from dpone_drivers.postgres import classify, driver_errors
from dpone_protocol.batch_manifest import BatchFile
from dpone_protocol.messages import BatchEncoding

log = logging.getLogger(__name__)
_DONE = object()


@dataclass(frozen=True, slots=True)
class KeyRange:
    low: int
    high: int  # inclusive


def split(low: int, high: int, parts: int) -> list[KeyRange]:
    """`parts` contiguous ranges covering low..high (fewer when there are fewer keys)."""
    parts = max(1, min(parts, high - low + 1))
    step = (high - low + 1) // parts
    bounds = [low + i * step for i in range(parts)] + [high + 1]
    return [KeyRange(bounds[i], bounds[i + 1] - 1) for i in range(parts)]


@dataclass(slots=True)
class _File:
    files: list[BatchFile]
    rows: int
    last_key: bytes  # the bookmark: a JSON array with the key of the file's last row
    json_nulls: int  # rows of the file with a JSON null in a json/jsonb column


class RangeReader:
    """Reads one key range into batch files on its own connection, in a thread."""

    def __init__(
        self,
        conn: Any,
        query: RangeQuery,
        key_range: KeyRange,
        spec: BatchSpec,
        part: str,
        redactor: Any,
    ) -> None:
        self.conn = conn
        self.query = query
        self.range = key_range
        self.spec = spec
        self.part = part
        self.redactor = redactor
        self.json_nulls = 0
        self.files: queue.Queue[Any] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"range-{part}", daemon=True)

    def _run(self) -> None:
        try:
            self._read()
            self.files.put(_DONE)
        except BaseException as exc:  # handed to the main thread, which raises it
            self.files.put(exc)

    def _read_compiled(self, compiled: CompiledRows) -> None:
        writer = self.spec.writer(self.part)
        key = b""
        with compiled.open(self.conn, self.query.sql, (self.range.low, self.range.high)) as rows:
            while (block := rows.read(b"", b"\n", writer.max_rows - writer.rows, 1 << 20)) is not None:
                writer.write_lines(block.data, block.rows)
                self.json_nulls += block.json_nulls
                key = block.last_key or key
                if writer.full():
                    self._close(writer, key)
                if self.stop.is_set():
                    return
        self._close(writer, key)

    def _read(self) -> None:
        if self.query.compiled is not None:
            self._read_compiled(self.query.compiled)
        else:
            self._read_json()

    def _read_json(self) -> None:
        writer = self.spec.writer(self.part)
        last = b""
        params = (self.range.low, self.range.high)
        with self.conn.cursor() as cur, cur.copy(self.query.sql, params) as copy:
            for row in copy:
                last = bytes(row)
                if self.query.flagged:
                    sep = last.rindex(b"\x1f")
                    if last[sep + 1 : sep + 2] == b"t":
                        self.json_nulls += 1
                    last = last[:sep] + b"\n"
                writer.write_line(last)
                if writer.full():
                    self._close(writer, self._key(last))
                if self.stop.is_set():
                    return
        self._close(writer, self._key(last))

    def _key(self, line: bytes) -> bytes:
        return orjson.dumps([orjson.loads(line)[self.query.key]]) if line else b""

    def _close(self, writer: Any, key: bytes) -> None:
        rows = writer.rows
        written = writer.close()
        if written:
            self.files.put(_File(written, rows, key, self.json_nulls))
            self.json_nulls = 0


@dataclass(frozen=True, slots=True)
class RangeQuery:
    """One range's rows, ordered by the key, with two placeholders for the range's bounds: a COPY of
    JSON rows (each ending with a t/f JSON-null flag field when `flagged`), or with `compiled` the
    SELECT the compiled row path reads."""

    sql: str
    key: str  # the key's property name
    flagged: bool = False
    compiled: CompiledRows | None = None


def read_in_ranges(
    main: Any,
    connect: Callable[[], Any],
    query: RangeQuery,
    bounds: tuple[str, list[Any]],
    spec: BatchSpec,
    connections: int,
    redactor: Any,
    on_file: Callable[[bytes, int], None],
) -> Iterator[WrittenBatch]:
    """Files of the whole table (the `bounds` query gives min and max key), announced in key order.

    `on_file` receives each announced file's last key and its count of rows holding a JSON null
    before the file is yielded.
    """
    encoding = BatchEncoding("jsonl", spec.compression)
    errors = driver_errors()
    readers: list[RangeReader] = []
    try:
        with main.transaction():
            # One snapshot for every reader: the ranges together are one consistent read.
            main.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = main.execute("SELECT pg_export_snapshot()").fetchone()[0]
            low, high = main.execute(*bounds).fetchone()
            if low is None:
                return  # no rows
            ranges = split(int(low), int(high), connections)
            log.info("reading %d key ranges, a connection each: %s", len(ranges), ranges)
            for i, key_range in enumerate(ranges):
                conn = connect()
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # an id from the server, not input
                readers.append(RangeReader(conn, query, key_range, spec, f"r{i}-", redactor))
            for reader in readers:
                reader.thread.start()
            for reader in readers:
                while (item := reader.files.get()) is not _DONE:
                    if isinstance(item, BaseException):
                        raise item
                    on_file(item.last_key, item.json_nulls)
                    yield WrittenBatch(item.files, item.rows, encoding)
    except errors as exc:
        raise classify(exc, redactor, "reading the table in key ranges") from None
    finally:
        _stop(readers)


def _stop(readers: list[RangeReader]) -> None:
    """Stop readers still running (after an error or an early exit) and close their connections."""
    for reader in readers:
        reader.stop.set()
        if reader.thread.is_alive():
            with contextlib.suppress(Exception):  # best effort: the connection is closed below anyway
                reader.conn.cancel()
    for reader in readers:
        if reader.thread.ident is not None:
            reader.thread.join(timeout=30)
        with contextlib.suppress(Exception):
            reader.conn.close()
