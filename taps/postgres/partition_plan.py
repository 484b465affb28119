"""Key ranges of one table for a partitioned load, and the bookmark the stream takes after it.

The bounds come from the cheapest source that knows the key's distribution:
- statistics: the column's histogram in pg_stats (equal-count buckets, as of the last ANALYZE),
  with the table's row estimate; nothing is scanned.
- scan: percentiles of the column itself (`percentile_disc`): exact, reads the key column once.
- even: min and max of an integer key split into equal widths (two index probes): for keys that
  fill their range evenly, e.g. a sequence on a table too big to scan.
`auto` takes statistics when the table was analysed and holds enough buckets, else scan.

Bounds are the key's text form, so every type keeps its exact value and the tap compares them
in the column's own type and collation (a half-open range per bound, NULL keys in the first).
The bookmark is read now, before any range: rows changed while the ranges load are read again
by the next ordinary run (at least once, made exact by merging on the key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from dpone.state.records import LsnPosition, StreamBookmark, XminPosition
from dpone.taps.framework.sql_stream import SRC, SqlStream
from dpone.taps.postgres.cdc import check_setup, lsn_to_int
from dpone.taps.postgres.estimate import estimate_rows
from dpone_protocol.catalog import FULL_TABLE, INCREMENTAL, Catalog
from dpone_protocol.errors import ConfigError

METHODS = ("auto", "statistics", "scan", "even")
_INTEGER_TYPES = ("smallint", "integer", "bigint")
_COLUMN_INFO = """
SELECT format_type(a.atttypid, a.atttypmod), c.relkind,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped
WHERE n.nspname = %s AND c.relname = %s
"""
_HISTOGRAM = """
SELECT histogram_bounds::text::text[] FROM pg_stats
WHERE schemaname = %s AND tablename = %s AND attname = %s AND inherited = %s
"""


def _pick(bounds: list[str], parts: int) -> list[str]:
    """`parts - 1` cut points spread evenly over sorted `bounds` (distinct, in their order)."""
    cuts: list[str] = []
    last = len(bounds) - 1
    for i in range(1, parts):
        value = bounds[round(i * last / parts)]
        if not cuts or cuts[-1] != value:
            cuts.append(value)
    return cuts


class _Planner:
    def __init__(self, tap: Any, stream: SqlStream, column: str) -> None:
        self.tap = tap
        self.conn = tap.conn
        self.stream = stream
        self.table = stream.table
        self.column = column
        self.expression = stream.column(column)
        self.notes: list[str] = []
        row = self.query(_COLUMN_INFO, (column, self.table.schema, self.table.name)).fetchone()
        if row is None:
            raise ConfigError(f"stream {stream.name!r}: {column!r} is not a column of {self.table.qualified}")
        self.type, self.kind, indexed = row[0], row[1], bool(row[2])
        if not indexed and self.kind != "p":
            self.notes.append(
                f"no index starts with {column!r}: each range scans the whole table; create one, or partition by "
                "an indexed column (the primary key)"
            )

    def query(self, sql: str, params: Any = None) -> Any:
        try:
            return self.conn.execute(sql, params)
        except self.tap.dialect.driver_errors() as exc:
            doing = f"planning key ranges of {self.table.qualified}"
            raise self.tap.dialect.error(exc, self.tap.redactor, doing) from None

    def rows(self, catalog: Catalog | None) -> int | None:
        return estimate_rows(self.tap, catalog).get(self.stream.name)

    def statistics(self, parts: int) -> list[str] | None:
        found = self.query(_HISTOGRAM, (self.table.schema, self.table.name, self.column, self.kind == "p")).fetchone()
        bounds = found[0] if found else None
        if not bounds or len(bounds) < 2 or len(bounds) - 1 < parts:
            return None
        # Rows added since the last ANALYZE lie past its histogram: all in the last range. One index
        # probe finds out, and says so.
        sql = f"SELECT max({self.expression}) > %s FROM {self.table.qualified} AS {SRC}"
        if self.query(sql, (bounds[-1],)).fetchone()[0]:
            self.notes.append(
                f"keys past {bounds[-1]!r} (the statistics' last bound) were added since the last ANALYZE: the last "
                "range holds them all; run ANALYZE and plan again with --replace, or use --method scan"
            )
        return _pick(bounds, parts)

    def scan(self, parts: int) -> list[str]:
        fractions = [i / parts for i in range(1, parts)]
        if not fractions:
            return []
        sql = (
            f"SELECT (percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY {self.expression}))::text[] "
            f"FROM {self.table.qualified} AS {SRC}"
        )
        return _distinct(self.query(sql, (fractions,)).fetchone()[0] or [])

    def count(self) -> int:
        return int(self.query(f"SELECT count(*) FROM {self.table.qualified} AS {SRC}").fetchone()[0])

    def even(self, parts: int) -> list[str]:
        if self.type not in _INTEGER_TYPES:
            raise ConfigError(f"--method even splits integer keys; {self.column!r} is {self.type}: use scan")
        low, high = self.query(
            f"SELECT min({self.expression}), max({self.expression}) FROM {self.table.qualified} AS {SRC}"
        ).fetchone()
        if low is None:
            return []
        step = (int(high) - int(low) + 1) / parts
        return _distinct([str(int(low) + math.ceil(i * step)) for i in range(1, parts)])


def _distinct(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        if value is not None and (not out or out[-1] != value):
            out.append(value)
    return out


def _bookmark(tap: Any, stream: SqlStream, method: str, replication_key: str | None) -> Any:
    """The stream's bookmark as an ordinary run would leave it after a full read started now."""
    if method == INCREMENTAL:
        if not replication_key:
            raise ConfigError(f"stream {stream.name!r}: INCREMENTAL replication needs a replication-key")
        key = stream.column(replication_key)
        column = next((c for c in stream.table.columns if c.name == replication_key), None)
        largest = f"max({key})" if column is None else stream.dialect.key_value(column, f"max({key})")
        sql = f"SELECT json_build_array({largest})::text FROM {stream.table.qualified} AS {SRC}"
        value = orjson.loads(tap.conn.execute(sql).fetchone()[0])[0]
        return None if value is None else StreamBookmark(stream.name, replication_key, value).to_dict()
    if method == "XMIN":
        horizon = tap.conn.execute("SELECT txid_snapshot_xmin(txid_current_snapshot()) %% %s", (2**32,)).fetchone()[0]
        return XminPosition(stream.name, int(horizon)).to_dict()
    if method == "LOG_BASED":
        # The slot keeps every change from here on until the stream's first log-based run reads it.
        slot = str(tap.config.get("replication_slot") or "dpone")
        check_setup(tap.conn, slot, bool(tap.config.get("create_replication_slot", True)))
        position = tap.conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()[0]
        return LsnPosition(stream.name, lsn_to_int(position)).to_dict()
    return None  # FULL_TABLE: the next run reads the whole table again; nothing to move


def plan_partitions(tap: Any, request: Mapping[str, Any], catalog: Catalog | None) -> dict[str, Any]:
    name = str(request.get("stream") or "")
    column = str(request.get("by") or "")
    method = str(request.get("method") or "auto")
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}")
    entry = next((e for e in catalog.selected() if e.tap_stream_id == name), None) if catalog else None
    streams = {s.name: s for s in tap.discover_streams()}
    stream = streams.get(name)
    if entry is None or stream is None:
        raise ConfigError(f"stream {name!r} is not selected in this pipeline's catalog")
    assert isinstance(stream, SqlStream)
    if stream.table.is_view:
        raise ConfigError(f"stream {name!r} is a view: partition a table (a view has no statistics or index)")
    planner = _Planner(tap, stream, column)
    rows = planner.rows(catalog)
    ranges, per_range = request.get("ranges"), request.get("rows_per_range")
    if per_range:
        if rows is None or method in ("scan", "even"):
            rows = planner.count()
        ranges = max(1, math.ceil(rows / int(per_range)))
    parts = max(1, int(ranges or 1))
    cuts: list[str] | None = None
    used = method
    if method in ("auto", "statistics"):
        cuts = planner.statistics(parts) if rows is not None else None
        used = "statistics"
        if cuts is None:
            if method == "statistics":
                raise ConfigError(
                    f"{stream.table.qualified} has no statistics for {column!r} with {parts} buckets: run ANALYZE "
                    "(or raise the column's statistics target), or use --method scan (a column with few distinct "
                    "values has no histogram at all)"
                )
            cuts, used = planner.scan(parts), "scan"
    elif method == "scan":
        cuts = planner.scan(parts)
    else:
        cuts = planner.even(parts)
    if len(cuts) + 1 < parts:
        planner.notes.append(f"{parts} ranges asked, {len(cuts) + 1} planned: the key has fewer distinct values")
    replication = entry.effective_replication_method() or FULL_TABLE
    rk = entry.effective_replication_key() if replication == INCREMENTAL else None
    return {
        "column": column,
        "type": planner.type,
        "method": used,
        "cuts": cuts,
        "rows": rows,
        "replication_method": replication,
        "bookmark": _bookmark(tap, stream, replication, rk),
        "notes": planner.notes,
    }
