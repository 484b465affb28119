"""Batches kept in the destination's bulk format instead of as decoded records.

A loader may offer a `RowEncoder` per stream and a `LineRouter` shared by its streams. The
target loop then hands each input line to the router first: a RECORD it can encode goes
straight into its stream's batch, with no decoding into Python objects. Any other line (and any
record the router declines) takes the decoded path, and a decoded record is added to the same
encoder, so a batch keeps the order records arrived in.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

# LineRouter.feed results
NOT_HANDLED = 0
ADDED = 1
ADDED_FULL = 2


class RowEncoder(Protocol):
    """One stream's batch in the destination's bulk format."""

    @property
    def rows(self) -> int: ...

    @property
    def duplicates(self) -> int:
        """Non-zero when a key value came twice in this batch (merges must keep the last)."""

    def add(self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int) -> bool:
        """Append a decoded record; True when the batch is full. ValueError names a bad value."""

    def feed_record(self, line: bytes) -> bool:
        """Append a bare record object's JSON (a BATCH file line); False to have it decoded instead."""

    def take(self) -> bytes | bytearray:
        """The batch so far; the encoder starts a new one."""

    def version_floor(self) -> int | None:
        """Before take(): the lowest table version among the batch's rows, or None when one has none
        (or versions are not tracked)."""

    def take_keys(self) -> AbstractSet[bytes] | None:
        """Before take(): the batch's key values as text, or None when not known in full (no keys
        tracked, or a key came twice). Two batches whose key sets are disjoint cannot meet on a key."""

    def is_full(self) -> bool: ...

    def age(self) -> float:
        """Seconds since the batch's first row; 0 when empty."""


class LineRouter(Protocol):
    """May also offer `feed_run(block, at, line) -> (end, lines taken, batch full)`: the run of
    whole RECORD lines starting at `at` in a block of the input (the first is input line `line`),
    taken at once; Target reads a file in blocks when the router has it."""

    def register(self, stream: str, encoder: Any) -> None:
        """Send this stream's RECORD lines to `encoder` (replacing the stream's previous one)."""

    def unregister(self, stream: str) -> None: ...

    def feed(self, line: bytes) -> int:
        """NOT_HANDLED, ADDED or ADDED_FULL."""


@dataclass(frozen=True, slots=True)
class EncodedRows:
    """A batch taken from a RowEncoder, handed to the loader's bulk load."""

    data: bytes | bytearray  # a buffer the encoder gave up, not copied
    rows: int
    duplicates: bool
    keys: AbstractSet[bytes] | None = None  # the batch's key texts, when known in full (RowEncoder.take_keys)
    floor: int | None = None  # the lowest table version of its rows, when every row has one
