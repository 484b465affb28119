"""The SQL of a reconcile answer (dpone_protocol/reconcile.py), written once for every SQL database.

Each side counts its own rows: one scan puts every row in its range with a CASE over the cut
points and sums the rows' hashes per range; proposing cut points is one quantile query per span;
listing keys is one ordered query. A database supplies its :class:`Words` (how it writes a
canonical value, a hash, a cast, a quantile) and a function that runs a statement with
parameters; key values always travel as parameters, names are always quoted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dpone_drivers.sql_names import ANSI, Quoting
from dpone_protocol.errors import ConfigError
from dpone_protocol.reconcile import (
    JSON,
    NULL_PIECE,
    Request,
    intervals,
    json_value,
    span_bounds,
)

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


class Words(ABC):
    """How one SQL family writes the reconcile queries."""

    quoting: Quoting = ANSI
    param = "%s"
    text_type = "text"

    def setup(self) -> list[str]:
        """Statements a session runs first (time zone, float output, helper macros)."""
        return []

    @abstractmethod
    def canonical(self, kind: str, expr: str, type_: str) -> str:
        """SQL giving the canonical text (dpone_protocol/reconcile.py) of `expr`, a value of
        `kind` whose SQL type is `type_`; NULL stays NULL."""

    @abstractmethod
    def row_hash(self, text: str) -> str:
        """The first HASH_HEX_DIGITS hex digits of MD5(`text` as UTF-8), as a 64-bit integer."""

    @abstractmethod
    def hash_sum(self, hashes: str) -> str:
        """sum(`hashes`) modulo CHECKSUM_MODULUS, 0 for no rows, as a 64-bit integer."""

    @abstractmethod
    def cast(self, type_: str) -> str:
        """A parameter cast to a key column's type."""

    def key(self, expr: str, type_: str) -> str:
        """A key column as it is compared and ordered (where text needs a byte-wise collation)."""
        return expr

    @abstractmethod
    def quantiles(self, key: str, fractions: Sequence[float]) -> str:
        """An aggregate giving the values of `key` at `fractions` of its order, as a list."""

    def piece(self, text: str) -> str:
        """One value of the row text: `<characters>:<text>`, or NULL_PIECE for NULL."""
        return f"coalesce(CAST(length({text}) AS {self.text_type}) || ':' || {text}, '{NULL_PIECE}')"


@dataclass(slots=True)
class Table:
    """What one side compares: a table (or view), how each requested column reads in it, its keys."""

    ref: str  # quoted, qualified
    label: str  # schema.table, for people
    columns: dict[str, tuple[str, str]]  # request column -> (SQL expression, SQL type); absent: missing
    keys: list[tuple[str, str]]  # the key columns (expression, SQL type), in key order
    live: str = ""  # a condition on the rows compared (a destination's not soft-deleted rows)
    notes: list[str] = field(default_factory=list)


class Reconciler:
    """Answers one reconcile request over one table with `query`."""

    def __init__(self, request: Request, table: Table | None, words: Words, query: Query) -> None:
        self.request = request
        self.table = table
        self.words = words
        self.query = query
        if table is not None:
            missing = [k for k in request.keys if k not in table.columns]
            if missing or (request.keys and not table.keys):
                raise ConfigError(f"{table.label}: key columns {missing or request.keys} are not in the table")

    # -- SQL pieces ------------------------------------------------------------------------
    def _key(self) -> str:
        assert self.table is not None
        expr, type_ = self.table.keys[0]
        return self.words.key(expr, type_)

    def _cast(self) -> str:
        assert self.table is not None
        return self.words.cast(self.table.keys[0][1])

    def _in_span(self, lo: Any, hi: Any) -> tuple[str, list[Any]]:
        key, cast = self._key(), self._cast()
        parts, params = [], []
        if lo is not None:
            parts.append(f"{key} >= {cast}")
            params.append(lo)
        if hi is not None:
            parts.append(f"{key} < {cast}")
            params.append(hi)
        return (" AND ".join(parts) or f"{key} IS NOT NULL"), params

    def _where(self, spans: Sequence[tuple[Any, Any]] | None) -> tuple[str, list[Any]]:
        assert self.table is not None
        conditions, params = [], []
        if self.table.live:
            conditions.append(self.table.live)
        if spans:
            ors = []
            for lo, hi in spans:
                text, values = self._in_span(lo, hi)
                ors.append(f"({text})")
                params += values
            conditions.append(f"({' OR '.join(ors)})")
        return (f" WHERE {' AND '.join(conditions)}" if conditions else ""), params

    def _row_hash(self) -> str:
        assert self.table is not None
        pieces = []
        for column in self.request.checksummed:
            found = self.table.columns.get(column.name)
            # A column the table lacks holds nothing: NULL, so its values at the other side differ.
            text = self.words.canonical(column.kind, *found) if found else "NULL"
            pieces.append(self.words.piece(text))
        return self.words.row_hash(" || ".join(pieces) or "''")

    # -- answers ---------------------------------------------------------------------------
    def answer(self) -> dict[str, Any]:
        request = self.request
        if request.fetch_keys is not None:
            (lo, hi), limit = request.fetch_keys
            return self.fetch_keys(lo, hi, limit)
        body: dict[str, Any] = {}
        bounds = request.bounds
        if not request.keys:
            bounds = []
        elif bounds is None:
            spans = request.spans or [(None, None)]
            cuts = [self.propose(lo, hi, request.ranges) for lo, hi in spans]
            bounds = span_bounds(spans, cuts)
            body["cuts"] = cuts
        ranges, null_keys = self.count(bounds, request.spans if request.keys else None)
        body.update(
            table=self.table.label if self.table else None,
            bounds=bounds,
            ranges=ranges,
            rows=sum(r["rows"] for r in ranges),
            null_keys=null_keys,
            columns=[c.name for c in request.checksummed if self.table and c.name in self.table.columns],
            skipped={c.name: "json values are not checksummed" for c in request.columns if c.kind == JSON},
            missing=[c.name for c in request.columns if self.table and c.name not in self.table.columns],
            notes=self.table.notes if self.table else [],
        )
        return body

    def count(self, bounds: Sequence[Any], spans: Sequence[tuple[Any, Any]] | None) -> tuple[list[dict[str, Any]], int]:
        """Rows (and the checksum) of each range of `bounds`, counting only rows within `spans`."""
        found: dict[int, tuple[int, int | None]] = {}
        null_keys = 0
        if self.table is not None:
            params: list[Any] = []
            if self.request.keys:
                key, cast = self._key(), self._cast()
                whens = [f"WHEN {key} IS NULL THEN -1"]
                for i, value in enumerate(bounds):
                    whens.append(f"WHEN {key} < {cast} THEN {i}")
                    params.append(value)
                bucket = f"CASE {' '.join(whens)} ELSE {len(bounds)} END"
            else:
                bucket = "0"
            # Without keys there are no ranges to narrow: counts only.
            checksum = self.request.checksum and bool(self.request.keys)
            hashed = f", {self._row_hash()} AS _dpone_h" if checksum else ""
            where, where_params = self._where(spans)
            total = f", {self.words.hash_sum('_dpone_h')}" if checksum else ", NULL"
            sql = (
                f"SELECT _dpone_b, count(*){total} FROM (SELECT {bucket} AS _dpone_b{hashed} "
                f"FROM {self.table.ref}{where}) AS _dpone_r GROUP BY _dpone_b"
            )
            for bucket_no, rows, summed in self.query(sql, params + where_params):
                if int(bucket_no) < 0:
                    null_keys = int(rows)
                else:
                    found[int(bucket_no)] = (int(rows), None if summed is None else int(summed))
        empty_sum = 0 if self.request.checksum and self.request.keys else None
        return [
            {
                "lo": lo,
                "hi": hi,
                "rows": found.get(i, (0, None))[0],
                "checksum": found[i][1] if i in found else empty_sum,
            }
            for i, (lo, hi) in enumerate(intervals(bounds))
        ], null_keys

    def propose(self, lo: Any, hi: Any, pieces: int) -> list[Any]:
        """Cut points splitting the rows of [lo, hi) into `pieces` by the first key's quantiles."""
        if self.table is None or pieces < 2:
            return []
        fractions = [i / pieces for i in range(1, pieces)]
        where, params = self._where([(lo, hi)])
        rows = self.query(f"SELECT {self.words.quantiles(self._key(), fractions)} FROM {self.table.ref}{where}", params)
        cuts: list[Any] = []
        for value in rows[0][0] if rows and rows[0][0] is not None else []:
            cut = json_value(value)
            if cut is not None and cut != lo and (not cuts or cuts[-1] != cut):
                cuts.append(cut)
        return cuts

    def fetch_keys(self, lo: Any, hi: Any, limit: int) -> dict[str, Any]:
        """Every key of [lo, hi): canonical text (to compare across databases) and values (to act on)."""
        if self.table is None or not self.request.keys:
            return {"table": None, "keys": [], "values": [], "truncated": False}
        kinds = {c.name: c.kind for c in self.request.columns}
        texts, values = [], []
        # Aliased: an output column named like a key column would make ORDER BY ambiguous.
        for i, name in enumerate(self.request.keys):
            expr, type_ = self.table.columns[name]
            texts.append(f"{self.words.canonical(kinds.get(name, 'string'), expr, type_)} AS _dpone_k{i}")
        for i, (raw, _type) in enumerate(self.table.keys):
            values.append(f"{raw} AS _dpone_v{i}")
        where, params = self._where([(lo, hi)])
        sql = (
            f"SELECT {', '.join(texts + values)} FROM {self.table.ref}{where} "
            f"ORDER BY {', '.join(self.words.key(e, t) for e, t in self.table.keys)} LIMIT {int(limit) + 1}"
        )
        rows = self.query(sql, params)
        n = len(self.request.keys)
        return {
            "table": self.table.label,
            "keys": [list(row[:n]) for row in rows[:limit]],
            "values": [[json_value(v) for v in row[n:]] for row in rows[:limit]],
            "truncated": len(rows) > limit,
        }
