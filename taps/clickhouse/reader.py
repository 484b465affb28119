"""A TabSeparated result read as lines of bytes, a megabyte at a time, with no Python work per value.

Every field the tap selects is JSON text, which holds no raw control character, so TabSeparated
escapes nothing in it but backslashes and single quotes, and a raw tab or newline in the result is
always a field or row boundary. Per chunk of complete rows: tabs become the 0x1F the SQL stream
base splits on, the escapes are undone in one pass (`codecs.escape_decode` reads exactly
ClickHouse's TSV escapes, and only runs on chunks holding a backslash), and the chunk is split into
rows, which itertools hands out without a Python frame per row. TabSeparated, unlike
TabSeparatedRaw, is also what the embedded engine streams instead of buffering whole.

A thread reads a few chunks ahead (at most PREFETCH megabytes held), so the server (or the embedded
engine, which runs in this process) renders the next rows while the tap frames the last ones.

A server that fails after it has begun to answer over HTTP appends its error text to the result;
a chunk that mentions an exception is checked for lines that are not rows, so the error comes
out as the server's message instead of as a broken row.
"""

from __future__ import annotations

import codecs
import itertools
import queue
import threading
from collections.abc import Iterator
from typing import Any

from dpone.taps.framework.sql_dialect import FIELD_SEPARATOR

CHUNK = 1 << 20
PREFETCH = 4  # chunks read ahead
_MARKER = b"xception"  # in "DB::Exception" and in the "__exception__" of newer servers: one scan finds both
_WAIT = 0.1  # seconds between checks that the consumer has not gone


class ServerError(Exception):
    """The server's error text, found in the result where rows were expected."""


class ConnectionLost(Exception):
    """The result stopped coming (connection reset, cut mid-row)."""


class ChunkReader:
    """Reads `stream` (anything with read(n)) on a thread, PREFETCH chunks ahead of `chunks()`.

    Errors in `passthrough` (the driver's own) reach the consumer as they are; others become
    ConnectionLost. close() stops the thread before the caller closes the stream under it."""

    def __init__(self, stream: Any, passthrough: tuple[type[Exception], ...] = ()) -> None:
        self._stream = stream
        self._passthrough = passthrough
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(PREFETCH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="dpone-clickhouse-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._stream.read(CHUNK)
                if not self._put(chunk) or not chunk:
                    return
        except self._passthrough as exc:
            self._put(exc)
        except BaseException as exc:  # the consumer must hear of any end, or it waits forever
            self._put(ConnectionLost(f"{type(exc).__name__}: {exc}"))

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_WAIT)
                return True
            except queue.Full:
                continue
        return False

    def chunks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def tsv_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The rows of a TabSeparated result given in chunks, fields joined by 0x1F."""
    return itertools.chain.from_iterable(map(_rows, _blocks(chunks)))


def _blocks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The result in blocks that end at a row's end."""
    rest = b""
    for chunk in chunks:
        end = chunk.rfind(b"\n") + 1
        if not end:
            rest += chunk
            continue
        block, rest = rest + chunk[:end], chunk[end:]
        yield block
    if rest:
        if _MARKER in rest:
            raise ServerError(rest.decode("utf-8", "replace"))
        raise ConnectionLost(f"the result ended inside a row ({len(rest)} bytes of it came)")


def _rows(block: bytes) -> list[bytes]:
    if _MARKER in block:
        _check_rows(block)
    block = block.replace(b"\t", FIELD_SEPARATOR)
    if b"\\" in block:
        block = codecs.escape_decode(block)[0]
    rows = block.split(b"\n")
    rows.pop()  # after the last newline
    return rows


def _check_rows(block: bytes) -> None:
    """Raise ServerError from the first line that is not a row (rows have two fields or more)."""
    lines = block.split(b"\n")
    for i, line in enumerate(lines[:-1]):
        if b"\t" not in line:
            raise ServerError(b"\n".join(lines[i:]).decode("utf-8", "replace"))
