"""A key range of one stream, as the runner hands it to a tap and a target (partitioned loads).

The tap reads only the range's rows when the stream's catalog metadata (breadcrumb []) holds
`"dpone-range": {"column", "type", "low", "high", "nulls"}`: rows with `low <= column < high` (a
None bound is open), plus the rows whose column is NULL when `nulls` is true (the first range
holds them). Bounds are text, cast by the source to `type`, so every value keeps its exact form.
Such a read sends no ACTIVATE_VERSION: a range is not the whole table.

The target loads the range in one transaction when DPONE_RANGE_TOKEN is set, and records the token
in its range ledger in that same transaction: a range is in the destination entirely or not at
all, and a second load of the same token is refused instead of doubling rows. It commits only
once the input ended with the runner's end-of-range STATE (RANGE_END).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from dpone_protocol.errors import ConfigError

RANGE_METADATA = "dpone-range"
RANGE_TOKEN_ENV = "DPONE_RANGE_TOKEN"  # noqa: S105 - an environment variable's name
# The runner's last line to the target once the tap ended cleanly: a STATE whose value is
# {RANGE_END: token}. The target commits the range only after it: an input that merely stops at a
# line boundary (the runner was killed between two writes) is not taken for a whole range.
RANGE_END = "dpone-range-end"


def range_end_line(token: str) -> bytes:
    return orjson.dumps({"type": "STATE", "value": {RANGE_END: token}}) + b"\n"


@dataclass(frozen=True, slots=True)
class KeyRange:
    column: str
    type: str  # the source's type name, e.g. bigint, text, timestamp with time zone
    low: str | None  # inclusive
    high: str | None  # exclusive
    nulls: bool = False  # also the rows whose key is NULL

    def to_metadata(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, stream: str, value: Any) -> KeyRange:
        if not isinstance(value, Mapping):
            raise ConfigError(f"stream {stream!r}: {RANGE_METADATA} must be an object")
        column, kind = value.get("column"), value.get("type")
        if not isinstance(column, str) or not column or not isinstance(kind, str) or not kind:
            raise ConfigError(f"stream {stream!r}: {RANGE_METADATA} needs a column and its type")
        low, high = value.get("low"), value.get("high")
        for name, bound in (("low", low), ("high", high)):
            if bound is not None and not isinstance(bound, str):
                raise ConfigError(f"stream {stream!r}: {RANGE_METADATA}.{name} must be text or null")
        return cls(column, kind, low, high, bool(value.get("nulls", False)))

    def describe(self) -> str:
        low = "" if self.low is None else f"{self.low} <= "
        high = "" if self.high is None else f" < {self.high}"
        nulls = " (and NULL)" if self.nulls else ""
        return f"{low}{self.column}{high}{nulls}"


class RangeLoaded(ConfigError):
    """The range's token is committed in the destination's ledger: its rows are there already."""


def stream_range(stream: str, metadata: Mapping[str, Any]) -> KeyRange | None:
    """The key range a catalog entry's stream metadata asks for, if any."""
    value = metadata.get(RANGE_METADATA)
    return None if value is None else KeyRange.from_metadata(stream, value)
