"""Combining, trimming and comparing Singer state values.

A tap that syncs only some streams emits a state holding only their bookmarks; saving it as-is
would forget every other stream, so the runner merges it into the stored state instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from dpone_protocol.errors import DataError


def merge_state(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """`new` laid over `old`: top-level keys of `new` win, and `bookmarks` merge per stream.

    A stream's bookmark in `new` replaces the old one whole (bookmarks are never merged key by
    key: a tap may drop a key on purpose); streams only in `old` are kept. Neither input is
    modified, but nested values are shared with them, not copied.
    """
    merged = dict(old or {})
    merged.update(new)
    old_bookmarks = (old or {}).get("bookmarks")
    new_bookmarks = new.get("bookmarks")
    if isinstance(old_bookmarks, Mapping) and isinstance(new_bookmarks, Mapping):
        merged["bookmarks"] = {**old_bookmarks, **new_bookmarks}
    elif isinstance(old_bookmarks, Mapping) and "bookmarks" not in new:
        merged["bookmarks"] = dict(old_bookmarks)
    return merged


def clear_stream(value: Mapping[str, Any], stream: str) -> dict[str, Any]:
    """`value` without `stream`'s bookmark, so the next run syncs that stream from the start."""
    cleared = dict(value)
    bookmarks = cleared.get("bookmarks")
    if isinstance(bookmarks, Mapping):
        cleared["bookmarks"] = {name: b for name, b in bookmarks.items() if name != stream}
    # A tap resuming "currently_syncing" would otherwise restart the stream mid-way.
    if cleared.get("currently_syncing") == stream:
        del cleared["currently_syncing"]
    return cleared


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys: equal state values give equal bytes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise DataError(f"state value is not JSON: {exc}") from None
