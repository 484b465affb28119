"""Singer bookmarks in state, and the tracker that decides when a bookmark may advance."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any


def get_bookmark(state: dict[str, Any], stream: str) -> dict[str, Any]:
    bookmarks = state.get("bookmarks") or {}
    value = bookmarks.get(stream)
    return dict(value) if isinstance(value, dict) else {}


def with_bookmark(state: dict[str, Any], stream: str, bookmark: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(state)
    out.setdefault("bookmarks", {})[stream] = bookmark
    return out


def start_value(bookmark: dict[str, Any], replication_key: str | None) -> Any:
    """The committed value to resume from, if it was recorded for the same key."""
    if replication_key and bookmark.get("replication_key") == replication_key:
        return bookmark.get("replication_key_value")
    return None


class BookmarkTracker:
    """Follows the replication key over a stream.

    A sorted stream may checkpoint the greatest value seen so far; an unsorted one only
    the value it started from, because a smaller value may still be on its way.
    """

    __slots__ = ("_max_key", "compare", "key", "max_value", "sorted", "start")

    def __init__(
        self, key: str | None, start: Any, is_sorted: bool, compare: Callable[[Any], Any] | None = None
    ) -> None:
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

    def bookmark(self, *, final: bool) -> dict[str, Any]:
        if not self.key:
            return {}
        value = self.max_value if (final or self.sorted) else self.start
        if value is None:
            return {}
        return {"replication_key": self.key, "replication_key_value": value}
