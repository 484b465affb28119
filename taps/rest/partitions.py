"""A stream's reads and what each has sent: the whole stream, or one parent record's part of a child.

Replication-key values compare by kind (`order_key`): date-times as instants, numbers as numbers,
anything else as text, so values of different kinds never raise. A partition is known in the state
by `context_id` of its context.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson


def order_key(value: Any) -> tuple[int, Any]:
    """How replication-key values compare: date-times as instants (naive ones as UTC), numbers as
    numbers, anything else as text; values of different kinds never raise."""
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            return (2, value)
        return (1, when if when.tzinfo else when.replace(tzinfo=dt.UTC))
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return (0, value)
    return (3, str(value))


@dataclass(slots=True)
class Partition:
    """One read of the endpoint: the whole stream, or one parent record's part of a child stream.

    Replication-key values only compare with values of their own kind (date-time, number, text):
    the kind of the committed bookmark, else of the first value seen (a start_date says nothing
    about an integer key). A value of another kind neither filters nor moves the bookmark.
    """

    context: dict[str, Any]  # how the state knows it: the carried fields, else the path's values ({}: top level)
    carried: dict[str, Any]  # parent values put into each of its records
    path_values: dict[str, Any]
    start: Any = None  # the committed replication-key value (or start_date) it reads from
    anchored: bool = False  # `start` is a committed bookmark, not start_date: it fixes the kind
    newest: Any = None  # the greatest replication-key value sent so far
    newest_key: Any = None
    done: bool = False
    kind: int | None = None
    odd: Any = None  # the first value of another kind, for the warning

    def __post_init__(self) -> None:
        if self.anchored and self.start is not None:
            self.kind = order_key(self.start)[0]

    def start_key(self) -> tuple[int, Any] | None:
        return None if self.start is None or self.start == "" else order_key(self.start)

    def observe(self, value: Any) -> None:
        if value is None or value == "":
            return
        key = order_key(value)
        if self.kind is None:
            self.kind = key[0]
        elif key[0] != self.kind:
            if self.odd is None:
                self.odd = value
            return
        if self.newest_key is None or key > self.newest_key:
            self.newest, self.newest_key = value, key

    def committed(self, is_sorted: bool, final: bool) -> Any:
        """The value a STATE may promise now: every record before it has been sent."""
        return self.newest if (self.done or is_sorted or final) and self.newest is not None else self.start


def context_id(context: Mapping[str, Any]) -> bytes:
    return orjson.dumps(context, option=orjson.OPT_SORT_KEYS, default=str)
