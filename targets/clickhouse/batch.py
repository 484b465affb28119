"""A ClickHouse batch is the stream's RECORD lines themselves, joined: the server parses them.

The router takes a compact RECORD line of a stream with an encoder and keeps its bytes; nothing
is decoded. A record that comes another way (another layout, decoded by the framework; a BATCH
file's bare record) is written into the same envelope, so one structure reads every line.
"""

from __future__ import annotations

import time
from typing import Any

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.encoded_rows import ADDED, ADDED_FULL, NOT_HANDLED
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.wire import peek_record_stream, record_head


class LineBatch:
    """One stream's batch: RECORD lines in arrival order, in one growing buffer."""

    def __init__(self, stream: str, policy: BatchPolicy, keys: tuple[str, ...] = ()) -> None:
        self.stream = stream
        # A line whose key is missing or null takes the decoded path, which names its line; a peek
        # at the bytes is cheap, and one it cannot settle (another escaping) decodes too.
        self.key_marks = tuple((DEFAULT_CODEC.dumps(k) + b":", DEFAULT_CODEC.dumps(k) + b":null") for k in keys)
        self.policy = policy
        self.max_rows, self.max_bytes = policy.max_rows, policy.max_bytes
        self.buffer = bytearray()
        self.count = 0
        self.first_at = 0.0

    @property
    def rows(self) -> int:
        return self.count

    @property
    def duplicates(self) -> int:
        return 0  # the ReplacingMergeTree keeps the last row of a key: the version orders them

    def append(self, line: bytes) -> bool:
        """A whole line, its newline included."""
        if not self.count:
            self.first_at = time.monotonic()
        self.buffer += line
        self.count += 1
        return self.count >= self.max_rows or len(self.buffer) >= self.max_bytes

    def add(self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int) -> bool:
        envelope: dict[str, Any] = {"record": record, "version": version, "time_extracted": time_extracted}
        return self.append(DEFAULT_CODEC.dumps(envelope) + b"\n")

    def feed_record(self, line: bytes) -> bool:
        # A BATCH file's bare record object: wrapped, not decoded.
        self.append(b'{"record":' + line.rstrip(b"\r\n") + b"}\n")
        return True

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer = bytearray()
        self.count = 0
        return data

    def is_full(self) -> bool:
        return self.count >= self.max_rows or len(self.buffer) >= self.max_bytes

    def age(self) -> float:
        return time.monotonic() - self.first_at if self.count else 0.0


class LineRouter:
    """Sends each compact RECORD line of a stream with a batch to that batch, untouched."""

    def __init__(self) -> None:
        self._batches: dict[bytes, LineBatch] = {}
        # The last stream's line head: consecutive records of one stream skip the regex.
        self._head = b"\x00"
        self._last = LineBatch("", BatchPolicy())

    def register(self, stream: str, encoder: Any) -> None:
        self._batches[stream.encode()] = encoder
        self._head = b"\x00"

    def unregister(self, stream: str) -> None:
        self._batches.pop(stream.encode(), None)
        self._head = b"\x00"

    def feed(self, line: bytes) -> int:
        """Runs once per record: LineBatch.append inlined."""
        if line.startswith(self._head):
            batch = self._last
        else:
            name = peek_record_stream(line)
            found = self._batches.get(name) if name is not None else None
            if found is None:
                return NOT_HANDLED
            self._head, self._last = record_head(found.stream), found
            batch = found
        for mark, null in batch.key_marks:
            if mark not in line or null in line:
                return NOT_HANDLED
        if not line.endswith(b"\n"):
            line += b"\n"  # the input's last line: the next batch line must not join it
        if not batch.count:
            batch.first_at = time.monotonic()
        buffer = batch.buffer
        buffer += line
        batch.count += 1
        return ADDED_FULL if batch.count >= batch.max_rows or len(buffer) >= batch.max_bytes else ADDED
