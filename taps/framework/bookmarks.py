"""Singer bookmarks in state, read and written as typed records, and the replication-key tracker.

A stream's committed bookmark is read as the record of its replication method
(`dpone.state.records.read_position`); what a checkpoint writes is a record's `to_dict()`, so the
JSON keeps the shape Meltano and other Singer taps use.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from dpone.state.records import Bookmark, StreamBookmark, bookmarks_of, parse_bookmark, read_position
from dpone_protocol.errors import ConfigError


def committed_position(state: dict[str, Any], stream: str, method: str) -> Bookmark:
    """The stream's bookmark in `state`, as its method's record (ConfigError when malformed)."""
    if not isinstance(state.get("bookmarks", {}), dict):
        raise ConfigError(
            f"the state's bookmarks must be an object of stream -> bookmark, got {type(state['bookmarks']).__name__}; "
            "fix the state, or clear it to start over"
        )
    return read_position(stream, bookmarks_of(state).get(stream), method)


def with_bookmark(state: dict[str, Any], stream: str, bookmark: Bookmark | None) -> dict[str, Any]:
    """`state` with the stream's bookmark replaced; None writes an empty one (a stream with no position).

    Null fields are left out: a tap drops a key (a finished read's `last_pk`) by setting it to None.
    """
    wire = {} if bookmark is None else bookmark.to_dict()
    out = copy.deepcopy(state)
    out.setdefault("bookmarks", {})[stream] = {k: v for k, v in wire.items() if v is not None}
    return out


def start_value(bookmark: Bookmark, replication_key: str | None) -> Any:
    """The committed value to resume from, if it was recorded for the same key."""
    if replication_key and isinstance(bookmark, StreamBookmark) and bookmark.replication_key == replication_key:
        return bookmark.replication_key_value
    return None


class BookmarkTracker:
    """Follows the replication key over a stream.

    A sorted stream may checkpoint the greatest value seen so far; an unsorted one only
    the value it started from, because a smaller value may still be on its way.
    """

    __slots__ = ("_max_key", "compare", "key", "max_value", "sorted", "start", "stream")

    def __init__(
        self,
        key: str | None,
        start: Any,
        is_sorted: bool,
        compare: Callable[[Any], Any] | None = None,
        stream: str = "",
    ) -> None:
        self.stream = stream
        self.key = key
        self.start = start
        self.max_value = start
        self.sorted = is_sorted
        self.compare = compare or (lambda v: v)
        self._max_key = self.compare(start) if start is not None else None

    def observe(self, record: dict[str, Any]) -> None:
        value = record.get(self.key) if self.key else None
        if value is None:
            return
        key = self.compare(value)
        if self._max_key is None or key > self._max_key:
            self.max_value = value
            self._max_key = key

    def bookmark(self, *, final: bool) -> StreamBookmark | None:
        if not self.key:
            return None
        value = self.max_value if (final or self.sorted) else self.start
        if value is None:
            return None
        return StreamBookmark(self.stream, self.key, value)


def positions_to_rewind(
    state: Mapping[str, Any], wanted: str | None, usable: Callable[[Any], bool], lacks: str, none: str
) -> list[Any]:
    """The committed positions a replay plan can rewind (`usable` ones: an LSN, Kafka offsets), of
    every stream or of `wanted`. `lacks` says what stream {stream} misses ({found}: what it holds)."""
    bookmarks = bookmarks_of(dict(state))
    if wanted is not None and wanted not in bookmarks:
        names = ", ".join(sorted(bookmarks)) or "none"
        raise ConfigError(f"the state has no stream {wanted!r} (streams: {names})")
    found = []
    for stream in sorted(bookmarks) if wanted is None else [wanted]:
        position = parse_bookmark(stream, bookmarks[stream])
        if usable(position):
            found.append(position)
        elif wanted is not None:
            raise ConfigError(lacks.format(stream=repr(stream), found=position.describe()))
    if not found:
        raise ConfigError(none)
    return found
