"""Compare one stream's source and destination range by range, narrow what differs, find deletes.

1. The source cuts its first key into `ranges` pieces by quantiles and counts each (and sums its
   rows' hashes); the destination counts the same ranges. Ranges whose counts (or checksums)
   differ are the differences.
2. Each difference holding more than one row is cut again into SPLIT pieces, by whichever side
   has more rows in it (a range the source emptied is cut by the destination's keys), and both
   sides count the new ranges, counting only rows inside the differences. At most NARROW_LEVELS
   times, and while that makes no more than MAX_NARROWED ranges: a changed value in a million
   rows ends up in a range of a handful of keys, a column missing everywhere stays a few ranges.
3. With deletes asked: in the differences where the destination has more live rows, both sides
   list their keys (at most DELETE_KEY_LIMIT), and the destination keys the source lacks are
   reported; with apply, the target removes them staging-first (its own transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dpone_protocol.errors import ConfigError
from dpone_protocol.reconcile import SOFT_DELETE_COLUMN, span_bounds
from dpone_runner.reconcile.streams import StreamSpec

SPLIT = 8  # pieces a differing range is cut into, per level
NARROW_LEVELS = 4  # 8^4: a range of 60,000 rows narrows to about 15
# Differences past which narrowing stops: when a whole column or most rows differ, finer ranges
# would only list more of the same.
MAX_NARROWED = 100
DELETE_KEY_LIMIT = 1_000_000  # keys listed per side and stream to find deletes; more is refused

Ask = Callable[[dict[str, Any]], dict[str, Any]]


class NotAvailable(Exception):
    """A side cannot answer reconcile (its connector has no such operation)."""


@dataclass(frozen=True, slots=True)
class Side:
    name: str  # the plugin
    ask: Ask
    destination: bool = False

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        body = {**request, "soft_delete_column": SOFT_DELETE_COLUMN} if self.destination else request
        found = self.ask(body)
        if not found.get("supported", True):
            raise NotAvailable(f"not available for {self.name}: {found.get('reason') or 'no reconcile operation'}")
        return found


@dataclass(frozen=True, slots=True)
class Options:
    checksum: bool = False
    ranges: int = 16
    deletes: bool = False
    apply_deletes: bool = False


@dataclass(slots=True)
class RangeDiff:
    lo: Any
    hi: Any
    source_rows: int
    destination_rows: int
    source_checksum: int | None = None
    destination_checksum: int | None = None

    @property
    def checksums_differ(self) -> bool:
        return (
            self.source_checksum is not None
            and self.destination_checksum is not None
            and self.source_checksum != self.destination_checksum
        )

    @property
    def differs(self) -> bool:
        return self.source_rows != self.destination_rows or self.checksums_differ

    def to_dict(self) -> dict[str, Any]:
        checked = self.source_checksum is not None and self.destination_checksum is not None
        return {
            "lo": self.lo,
            "hi": self.hi,
            "source_rows": self.source_rows,
            "destination_rows": self.destination_rows,
            "checksum": ("different" if self.checksums_differ else "equal") if checked else None,
        }


@dataclass(slots=True)
class Deletes:
    extra: list[list[Any]] = field(default_factory=list)  # destination keys missing at the source
    missing: list[list[Any]] = field(default_factory=list)  # source keys missing in the destination
    refused: str = ""
    applied: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination_only": self.extra,
            "source_only": self.missing,
            "refused": self.refused or None,
            "applied": self.applied,
        }


@dataclass(slots=True)
class StreamResult:
    stream: str
    target: str
    checksum: bool = False
    keys: list[str] = field(default_factory=list)
    source_table: str | None = None
    destination_table: str | None = None
    source_rows: int = 0
    destination_rows: int = 0
    null_keys: tuple[int, int] = (0, 0)
    ranges: int = 0  # ranges compared before narrowing
    differences: list[RangeDiff] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unavailable: str = ""
    deletes: Deletes | None = None

    @property
    def status(self) -> str:
        if self.unavailable:
            return "not available"
        return "different" if self.differences or self.null_keys[0] != self.null_keys[1] else "equal"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "target": self.target,
            "status": self.status,
            "keys": self.keys,
            "checksum": self.checksum,
            "source_table": self.source_table,
            "destination_table": self.destination_table,
            "source_rows": self.source_rows,
            "destination_rows": self.destination_rows,
            "null_keys": {"source": self.null_keys[0], "destination": self.null_keys[1]},
            "ranges": self.ranges,
            "differences": [d.to_dict() for d in self.differences],
            "skipped": self.skipped,
            "notes": self.notes,
            "unavailable": self.unavailable or None,
            "deletes": self.deletes.to_dict() if self.deletes else None,
        }


def _diffs(source: list[dict[str, Any]], destination: list[dict[str, Any]]) -> list[RangeDiff]:
    if len(source) != len(destination):
        raise ConfigError("the source and the destination answered for different ranges")
    found = []
    for s, d in zip(source, destination, strict=True):
        diff = RangeDiff(s["lo"], s["hi"], int(s["rows"]), int(d["rows"]), s.get("checksum"), d.get("checksum"))
        if diff.differs:
            found.append(diff)
    return found


def _within(bounds: list[Any], lo: Any, hi: Any) -> range:
    """Indexes of the ranges of `bounds` (intervals) that make up [lo, hi), whose edges are in `bounds`."""
    first = 0 if lo is None else bounds.index(lo) + 1
    last = len(bounds) if hi is None else bounds.index(hi)
    return range(first, last + 1)


class StreamComparison:
    def __init__(self, spec: StreamSpec, source: Side, destination: Side, options: Options) -> None:
        self.spec = spec
        self.source = source
        self.destination = destination
        self.options = options
        self.base = spec.request(options.checksum)
        self.result = StreamResult(
            spec.stream, destination.name, bool(self.base["checksum"]), list(spec.keys), skipped=dict(spec.skipped)
        )

    def run(self) -> StreamResult:
        result = self.result
        if not self.spec.keys:
            result.notes.append("the stream has no key properties: row counts only (no ranges, no checksums)")
        try:
            first = self.source.answer({**self.base, "ranges": self.options.ranges})
            second = self.destination.answer({**self.base, "bounds": first["bounds"]})
        except NotAvailable as exc:
            result.unavailable = str(exc)
            return result
        result.source_table, result.destination_table = first.get("table"), second.get("table")
        result.source_rows, result.destination_rows = int(first["rows"]), int(second["rows"])
        result.null_keys = (int(first.get("null_keys") or 0), int(second.get("null_keys") or 0))
        result.ranges = len(first["ranges"])
        result.notes += [f"destination: {note}" for note in second.get("notes") or []]
        if second.get("table") is None:
            result.notes.append("destination: the table does not exist")
        for side, answer in (("source", first), ("destination", second)):
            for column in answer.get("missing") or []:
                result.notes.append(f"{side}: no column {column} in the table (compared as NULL)")
        diffs = _diffs(first["ranges"], second["ranges"])
        for _level in range(NARROW_LEVELS if self.spec.keys else 0):
            narrowed = self._narrow(diffs)
            if narrowed is None:
                break
            diffs = narrowed
        result.differences = diffs
        if (self.options.deletes or self.options.apply_deletes) and result.status == "different":
            result.deletes = self._deletes(diffs)
        return result

    def _narrow(self, diffs: list[RangeDiff]) -> list[RangeDiff] | None:
        """The differences cut one level finer; None when none can be cut."""
        split = [d for d in diffs if max(d.source_rows, d.destination_rows) > 1]
        if not split or len(split) * SPLIT > MAX_NARROWED:
            return None
        spans = [(d.lo, d.hi) for d in split]
        cuts: list[list[Any]] = [[] for _ in split]
        proposed: dict[str, dict[str, Any]] = {}
        by_source = [i for i, d in enumerate(split) if d.source_rows >= d.destination_rows]
        by_destination = [i for i in range(len(split)) if i not in by_source]
        for side, chosen in ((self.source, by_source), (self.destination, by_destination)):
            if chosen:
                answer = side.answer({**self.base, "spans": [list(spans[i]) for i in chosen], "ranges": SPLIT})
                for i, inside in zip(chosen, answer["cuts"], strict=True):
                    cuts[i] = inside
                proposed[side.name] = answer
        if not any(cuts):
            return None  # every difference is a run of one first-key value: nothing left to cut
        bounds = span_bounds(spans, cuts)
        counted = {"bounds": bounds, "spans": [list(s) for s in spans]}
        answers = []
        for side in (self.source, self.destination):
            mine = proposed.get(side.name)
            reuse = mine is not None and len(proposed) == 1 and mine["bounds"] == bounds
            answers.append(mine if reuse and mine is not None else side.answer({**self.base, **counted}))
        ranges = list(zip(answers[0]["ranges"], answers[1]["ranges"], strict=True))
        narrowed: list[RangeDiff] = []
        cut = {id(d) for d in split}
        for diff in diffs:
            if id(diff) not in cut:
                narrowed.append(diff)
                continue
            for i in _within(bounds, diff.lo, diff.hi):
                narrowed += _diffs([ranges[i][0]], [ranges[i][1]])
        return narrowed

    def _deletes(self, diffs: list[RangeDiff]) -> Deletes:
        found = Deletes()
        if not self.spec.keys:
            found.refused = "the stream has no key properties to tell rows apart"
            return found
        wanted = [d for d in diffs if d.destination_rows > d.source_rows]
        listed = sum(d.source_rows + d.destination_rows for d in wanted)
        if listed > DELETE_KEY_LIMIT:
            found.refused = (
                f"{listed} keys to list in the differing ranges, more than {DELETE_KEY_LIMIT:,}: compare fewer "
                "streams (--stream) or cut finer (--ranges)"
            )
            return found
        for diff in wanted:
            request = {**self.base, "fetch_keys": {"span": [diff.lo, diff.hi], "limit": DELETE_KEY_LIMIT}}
            source, destination = self.source.answer(request), self.destination.answer(request)
            if source.get("truncated") or destination.get("truncated"):
                found.refused = f"more than {DELETE_KEY_LIMIT:,} keys in one range: cut finer (--ranges)"
                return found
            at_source = {tuple(k) for k in source["keys"]}
            at_destination = {tuple(k) for k in destination["keys"]}
            found.extra += [
                v for k, v in zip(destination["keys"], destination["values"], strict=True) if tuple(k) not in at_source
            ]
            found.missing += [
                v for k, v in zip(source["keys"], source["values"], strict=True) if tuple(k) not in at_destination
            ]
        if self.options.apply_deletes and found.extra:
            answer = self.destination.answer({**self.base, "delete": found.extra, "key_schema": self.spec.key_schema})
            found.applied = {k: answer.get(k) for k in ("table", "deleted", "mode")}
        return found
