"""A stream's batch kept as its RECORD lines, for destinations whose bulk load parses JSON lines itself.

The router takes the compact RECORD lines of a stream with a batch as they came, a whole run of
them at a time where the input is read in blocks (`feed_run`). A record that comes another way
(another layout, decoded by the framework; a BATCH file's bare record) is written into the same
envelope, `{"record":{...},"version":...,"time_extracted":...}`, so the destination reads every line
with one structure: the record, its version and time_extracted. ClickHouse (a named Tuple) and
BigQuery (a STRUCT column of the load job's schema) load batches this way.
"""

from __future__ import annotations

import bisect
import re
import sys
import threading
import time
from typing import Any

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.encoded_rows import ADDED, ADDED_FULL, NOT_HANDLED
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.wire import record_head

# A compact RECORD line's stream name, at any position of a block.
_STREAM_AT = re.compile(rb'\{"type":"RECORD","stream":"([^"\\]*)","record":')


class VersionClock:
    """ReplacingMergeTree versions in arrival order: a batch reserves its rows' range when it is
    taken (in the thread reading the input), so batches loading side by side cannot reorder them.
    Nanoseconds since the epoch, never going back within a run: a later run's rows win too."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def reserve(self, rows: int) -> int:
        with self._lock:
            base = max(time.time_ns(), self._last + 1)
            self._last = base + rows
            return base


class Lines(bytearray):
    """A taken batch's lines, the version of its first row, and where its rows came from: (row, input
    line) at the start of each run of consecutive input lines (line 0: not known)."""

    version_base = 0
    runs: tuple[tuple[int, int], ...] = ()

    def input_line(self, row: int) -> int | None:
        """The input line of the batch's row `row` (1-based), where the reader said."""
        at = bisect.bisect_right(self.runs, (row - 1, sys.maxsize)) - 1
        if at < 0 or not self.runs[at][1]:
            return None
        first_row, first_line = self.runs[at]
        return first_line + (row - 1 - first_row)


class LineBatch:
    """One stream's batch: its lines in arrival order, in one growing buffer."""

    def __init__(
        self, stream: str, policy: BatchPolicy, keys: tuple[str, ...] = (), clock: VersionClock | None = None
    ) -> None:
        self.stream = stream
        self.clock = clock or VersionClock()
        # A line whose key is missing or null takes the decoded path, which names its line; a peek
        # at the bytes is cheap, and one it cannot settle (another escaping) decodes too.
        self.key_marks = tuple((DEFAULT_CODEC.dumps(k) + b":", DEFAULT_CODEC.dumps(k) + b":null") for k in keys)
        self.max_rows, self.max_bytes = policy.max_rows, policy.max_bytes
        self.buffer = Lines()
        self.runs: list[tuple[int, int]] = []
        self.count = 0
        self.first_at = 0.0

    @property
    def rows(self) -> int:
        return self.count

    @property
    def duplicates(self) -> int:
        return 0  # the ReplacingMergeTree keeps the last row of a key: the version orders them

    def version_floor(self) -> None:
        return None  # not tracked

    def take_keys(self) -> None:
        return None  # not tracked: the destinations that take lines merge by version, not by key

    def append(self, line: bytes | memoryview, count: int = 1, input_line: int = 0) -> bool:
        """Whole lines in the batch's shape, newlines included; `input_line`: the first one's, if known."""
        if not self.count:
            self.first_at = time.monotonic()
        runs = self.runs
        if input_line or (runs and runs[-1][1]):
            first_row, first_line = runs[-1] if runs else (0, 0)
            # A line right after the run before it (the decoded path adds one at a time) extends it.
            if not (input_line and first_line and first_line + self.count - first_row == input_line):
                runs.append((self.count, input_line))
        self.buffer += line
        self.count += count
        return self.count >= self.max_rows or len(self.buffer) >= self.max_bytes

    def add(
        self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int, line: int = 0
    ) -> bool:
        """A decoded record (input line `line`, where known) in the batch's envelope."""
        envelope = {"record": record, "version": version, "time_extracted": time_extracted}
        return self.append(DEFAULT_CODEC.dumps(envelope) + b"\n", 1, line)

    def feed_record(self, line: bytes) -> bool:
        # A BATCH file's bare record object: wrapped, not decoded.
        self.append(b'{"record":' + line.rstrip(b"\r\n") + b"}\n")
        return True

    def take(self) -> Lines:
        # The buffer itself, not a copy: the batch starts a new one.
        data = self.buffer
        data.version_base = self.clock.reserve(self.count)
        data.runs = tuple(self.runs)
        self.buffer = Lines()
        self.runs = []
        self.count = 0
        return data

    def is_full(self) -> bool:
        return self.count >= self.max_rows or len(self.buffer) >= self.max_bytes

    def age(self) -> float:
        return time.monotonic() - self.first_at if self.count else 0.0


class LineRouter:
    """Sends the compact RECORD lines of each stream with a batch to that batch, untouched."""

    def __init__(self) -> None:
        self._batches: dict[bytes, LineBatch] = {}
        # The last stream's line head: consecutive records of one stream skip the regex.
        self._head = b"\x00"
        self._last = LineBatch("", BatchPolicy())
        # Per stream: the first newline of a block NOT followed by that stream's head ends its run.
        self._run_ends: dict[bytes, re.Pattern[bytes]] = {}

    def register(self, stream: str, encoder: Any) -> None:
        self._batches[stream.encode()] = encoder
        self._head = b"\x00"

    def unregister(self, stream: str) -> None:
        self._batches.pop(stream.encode(), None)
        self._head = b"\x00"

    def feed(self, line: bytes) -> int:
        """One line (the line loop's path)."""
        if line.startswith(self._head):
            batch = self._last
        else:
            found = self._switch(line, 0)
            if found is None:
                return NOT_HANDLED
            batch = found
        for mark, null in batch.key_marks:
            if mark not in line or null in line:
                return NOT_HANDLED
        if not line.endswith(b"\n"):
            line += b"\n"  # the input's last line: the next batch line must not join it
        return ADDED_FULL if batch.append(line) else ADDED

    def _switch(self, data: bytes, at: int) -> LineBatch | None:
        """The batch of the compact RECORD line at `at`, now the router's current stream; None
        when the line is no such record of a stream with a batch."""
        match = _STREAM_AT.match(data, at)
        found = self._batches.get(match[1]) if match is not None else None
        if found is not None:
            self._head, self._last = record_head(found.stream), found
        return found

    def feed_run(self, block: bytes, at: int, line: int = 0) -> tuple[int, int, bool]:
        """Take the run of one stream's RECORD lines that starts at `at` in `block` (whole lines; the
        first is input line `line`), up to where its batch is full: (where the run ends, lines taken,
        batch full); nothing (0 lines) when the line at `at` is no such record. Keys are not looked at
        here: the server's check names a record without its key (the line loop's feed looks at each
        line instead)."""
        if block.startswith(self._head, at):
            batch = self._last
        else:
            found = self._switch(block, at)
            if found is None:
                return at, 0, False
            batch = found
        head = self._head
        ends = self._run_ends.get(head)
        if ends is None:
            ends = self._run_ends[head] = re.compile(b"\n(?!" + re.escape(head) + b")")
        match = ends.search(block, at)
        end = match.end() if match is not None else len(block)
        count = block.count(b"\n", at, end)
        room = batch.max_rows - batch.count
        if count > room:
            end = at
            for _ in range(max(room, 1)):
                end = block.index(b"\n", end) + 1
            count = max(room, 1)
        room_bytes = batch.max_bytes - len(batch.buffer)
        if end - at > room_bytes:
            # At least one whole line, however long.
            end = max(block.rfind(b"\n", at, at + max(room_bytes, 0)) + 1, block.index(b"\n", at) + 1)
            count = block.count(b"\n", at, end)
        return end, count, batch.append(memoryview(block)[at:end], count, line)
