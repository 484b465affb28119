"""Singer bookmarks in state, and the tracker that decides when a bookmark may advance."""

from __future__ import annotations

import copy
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

    __slots__ = ("key", "max_value", "sorted", "start")

    def __init__(self, key: str | None, start: Any, is_sorted: bool) -> None:
        self.key = key
        self.start = start
        self.max_value = start
        self.sorted = is_sorted

    def observe(self, record: dict[str, Any]) -> None:
        value = record.get(self.key) if self.key else None
        if value is None:
            return
        if self.max_value is None or value > self.max_value:
            self.max_value = value

    def bookmark(self, *, final: bool) -> dict[str, Any]:
        if not self.key:
            return {}
        value = self.max_value if (final or self.sorted) else self.start
        if value is None:
            return {}
        return {"replication_key": self.key, "replication_key_value": value}
