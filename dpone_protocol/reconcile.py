"""The `reconcile` operation (dpone_protocol/ops.py): row counts and checksums per key range, each side
computed by its own database, so the runner compares numbers and never moves rows.

Request (`--ops`), one stream at a time::

    {"op": "reconcile", "stream": "public-orders",
     "keys": ["id"],                       # key properties; ranges are on the first one; [] = counts only
     "columns": [{"name": "id", "kind": "integer"}, ...],   # what the checksum covers, in this order
     "checksum": true,
     "soft_delete_column": "_sdc_deleted_at",   # a destination compares only rows where it is NULL
     "bounds": [100, 200],                 # cut points: ranges (-inf,100) [100,200) [200,+inf)
     "spans": [[100, 200]],                # optional: count only rows in these ranges (null = open end)
     "ranges": 16}                         # without bounds: propose cut points, `ranges` pieces per span

Answer (besides `op`/`supported`)::

    {"table": "public.orders", "bounds": [100, 200], "cuts": [[...], ...],   # cuts: per span, when proposed
     "ranges": [{"lo": null, "hi": 100, "rows": 99, "checksum": 123}, ...],  # one per interval of bounds
     "rows": 310, "null_keys": 0, "columns": ["id", ...], "skipped": {"doc": "json"}, "missing": []}

Two more forms: `"fetch_keys": {"span": [lo, hi], "limit": N}` answers `{"keys": [[text...]],
"values": [[value...]], "truncated": bool}` (every key column, as canonical text and as a value
the database takes back), and, for a target only, `"delete": [[value...], ...]` with
`"key_schema": {property: JSON schema}` removes those keys (answer `{"deleted": n, "mode":
"soft"|"hard", "table": ...}`).

Ranges: lo inclusive, hi exclusive, the first and last open; a row whose first key is NULL is in
no range (counted in `null_keys`). Text keys compare byte-wise (PostgreSQL `COLLATE "C"`, DuckDB's
default), so both databases put a row in the same range.

Checksum of a range: for each row, each column's canonical text (below) as `<characters>:<text>`,
or `-` for NULL, concatenated in the request's order; the MD5 of that (UTF-8) text; its first 15
hex digits as an integer; summed over the range, modulo 2^63. The canonical text of a value, by
its kind (the class of its JSON schema):

- integer, number: exact decimal, no exponent, no trailing fraction zeros, `0` for zero
  (`1.50` -> `1.5`, `1e+20` -> `100000000000000000000`; a float's shortest text that reads back
  the same double); `NaN`, `Infinity`, `-Infinity`.
- date-time: microseconds since 1970-01-01T00:00:00Z (a time without offset is UTC);
  `infinity` / `-infinity`. (An integer, not printed text: years before 1000 or after 9999 and BC
  print differently in each database; the instant does not.)
- date: days since 1970-01-01; time: microseconds since midnight (24:00:00 is 86400000000).
- boolean: `true` / `false`. string: the text as is.
- json (objects, arrays, unions): not checksummed (listed in `skipped`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dpone_protocol.errors import ConfigError
from dpone_protocol.json_schema import Logical

INTEGER, NUMBER, STRING, DATE_TIME, DATE, TIME, BOOLEAN, JSON = (
    "integer",
    "number",
    "string",
    "date-time",
    "date",
    "time",
    "boolean",
    "json",
)
KINDS = (INTEGER, NUMBER, STRING, DATE_TIME, DATE, TIME, BOOLEAN, JSON)
KIND_OF_LOGICAL = {
    Logical.STRING: STRING,
    Logical.UUID: STRING,
    Logical.INTEGER: INTEGER,
    Logical.NUMBER: NUMBER,
    Logical.DECIMAL: NUMBER,
    Logical.BOOLEAN: BOOLEAN,
    Logical.TIMESTAMP: DATE_TIME,
    Logical.DATE: DATE,
    Logical.TIME: TIME,
    Logical.OBJECT: JSON,
    Logical.ARRAY: JSON,
    Logical.JSON: JSON,
}
HASH_HEX_DIGITS = 15  # 60 bits of each row's MD5: a sum of millions of them stays exact in 128 bits
CHECKSUM_MODULUS = 2**63  # the sum is reported modulo this, so it fits a signed 64-bit integer
NULL_PIECE = "-"
SOFT_DELETE_COLUMN = "_sdc_deleted_at"  # a destination row soft-deleted by its target is not live
MAX_RANGES = 1000


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class Request:
    stream: str
    keys: list[str]
    columns: list[Column]
    checksum: bool
    soft_delete_column: str | None
    bounds: list[Any] | None
    spans: list[tuple[Any, Any]] | None
    ranges: int
    fetch_keys: tuple[tuple[Any, Any], int] | None
    delete: list[list[Any]] | None
    key_schema: dict[str, Any]

    @property
    def checksummed(self) -> list[Column]:
        return [c for c in self.columns if c.kind != JSON] if self.checksum else []


def _span(value: Any, where: str) -> tuple[Any, Any]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{where}: a span is [lo, hi] (null for an open end)")
    return value[0], value[1]


def parse_request(request: Mapping[str, Any]) -> Request:
    """A reconcile request checked; ConfigError names what is wrong."""
    stream = request.get("stream")
    keys = request.get("keys") or []
    columns = request.get("columns") or []
    if not isinstance(stream, str) or not stream:
        raise ConfigError("reconcile: the request names no stream")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConfigError("reconcile: keys must be a list of property names")
    parsed = []
    for column in columns:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str) or column.get("kind") not in KINDS:
            raise ConfigError(f"reconcile: a column is {{name, kind}} with kind one of {', '.join(KINDS)}")
        parsed.append(Column(column["name"], column["kind"]))
    bounds = request.get("bounds")
    if bounds is not None and not isinstance(bounds, list):
        raise ConfigError("reconcile: bounds must be a list of cut points")
    spans = request.get("spans")
    ranges = request.get("ranges", 1)
    if isinstance(ranges, bool) or not isinstance(ranges, int) or not 1 <= ranges <= MAX_RANGES:
        raise ConfigError(f"reconcile: ranges must be a whole number from 1 to {MAX_RANGES}")
    fetch = request.get("fetch_keys")
    fetch_keys = None
    if fetch is not None:
        limit = fetch.get("limit") if isinstance(fetch, dict) else None
        if not isinstance(limit, int) or limit < 1:
            raise ConfigError("reconcile: fetch_keys is {span: [lo, hi], limit: N}")
        fetch_keys = (_span(fetch.get("span"), "fetch_keys"), limit)
    delete = request.get("delete")
    if delete is not None and (not isinstance(delete, list) or not all(isinstance(k, list) for k in delete)):
        raise ConfigError("reconcile: delete is a list of key tuples")
    soft = request.get("soft_delete_column")
    return Request(
        stream=stream,
        keys=list(keys),
        columns=parsed,
        checksum=bool(request.get("checksum")),
        soft_delete_column=soft if isinstance(soft, str) and soft else None,
        bounds=None if bounds is None else list(bounds),
        spans=None if spans is None else [_span(s, "spans") for s in spans],
        ranges=ranges,
        fetch_keys=fetch_keys,
        delete=delete,
        key_schema=dict(request.get("key_schema") or {}),
    )


def json_value(value: Any) -> Any:
    """A key value from a database driver as JSON that both databases cast back to the same value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def span_bounds(spans: Sequence[tuple[Any, Any]], cuts: Sequence[Sequence[Any]]) -> list[Any]:
    """The cut points of ordered, disjoint spans and the cuts proposed inside each: every span's
    edges and cuts in order, an edge two neighbouring spans share written once."""
    bounds: list[Any] = []
    for (lo, hi), inside in zip(spans, cuts, strict=True):
        for value in (lo, *inside, hi):
            if value is not None and (not bounds or bounds[-1] != value):
                bounds.append(value)
    return bounds


def intervals(bounds: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(lo, hi) of each range the cut points make, the first and last open (None)."""
    edges = [None, *bounds, None]
    return [(edges[i], edges[i + 1]) for i in range(len(bounds) + 1)]
