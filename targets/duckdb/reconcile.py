"""target-duckdb's reconcile answer: DuckDB's words for the shared queries (dpone_drivers/reconcile_sql.py).

The canonical text of a number is built by a few temporary macros: DuckDB prints a DOUBLE as its
shortest exact text, but with an exponent past 15 digits (1e+20, 1.5e-07) and a DECIMAL with its
trailing zeros; the macros write any of those as the plain decimal PostgreSQL's
`trim_scale(x::numeric)` gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dpone.targets.framework.sql_reconcile import answer_request
from dpone_drivers.reconcile_sql import Words
from dpone_protocol.reconcile import BOOLEAN, CHECKSUM_MODULUS, DATE, DATE_TIME, HASH_HEX_DIGITS, INTEGER, NUMBER, TIME

if TYPE_CHECKING:
    from dpone.targets.duckdb.loader import DuckDBLoader
    from dpone.targets.duckdb.target import DuckDBTarget

# plain(neg, digits, point): the digits with the decimal point `point` digits from their left
# (negative or past the end: zeros added), leading and trailing zeros dropped, zero unsigned.
_MACROS = (
    """CREATE OR REPLACE TEMP MACRO dpone_num_join(neg, i, f) AS
       CASE WHEN i = '' AND f = '' THEN '0'
            ELSE (CASE WHEN neg THEN '-' ELSE '' END) || (CASE WHEN i = '' THEN '0' ELSE i END)
                 || (CASE WHEN f = '' THEN '' ELSE '.' || f END) END""",
    """CREATE OR REPLACE TEMP MACRO dpone_num_place(neg, d, p) AS dpone_num_join(neg,
       ltrim(CASE WHEN p <= 0 THEN '' WHEN p >= length(d) THEN d || repeat('0', greatest(p - length(d), 0))
                  ELSE left(d, p) END, '0'),
       rtrim(CASE WHEN p <= 0 THEN repeat('0', greatest(-p, 0)) || d WHEN p >= length(d) THEN ''
                  ELSE substr(d, p + 1) END, '0'))""",
    """CREATE OR REPLACE TEMP MACRO dpone_num_parts(neg, m, e) AS
       dpone_num_place(neg, split_part(m, '.', 1) || split_part(m, '.', 2), length(split_part(m, '.', 1)) + e)""",
    """CREATE OR REPLACE TEMP MACRO dpone_number(s) AS
       CASE WHEN s IS NULL THEN NULL
            WHEN lower(trim(s)) IN ('nan', '-nan', '+nan') THEN 'NaN'
            WHEN lower(trim(s)) IN ('inf', '+inf', 'infinity', '+infinity') THEN 'Infinity'
            WHEN lower(trim(s)) IN ('-inf', '-infinity') THEN '-Infinity'
            ELSE dpone_num_parts(starts_with(trim(s), '-'),
                                 split_part(lower(ltrim(trim(s), '+-')), 'e', 1),
                                 coalesce(TRY_CAST(nullif(split_part(lower(ltrim(trim(s), '+-')), 'e', 2), '')
                                                   AS INTEGER), 0)) END""",
)


class DuckDBWords(Words):
    param = "?"
    text_type = "VARCHAR"

    def setup(self) -> list[str]:
        return ["SET TimeZone = 'UTC'", *_MACROS]

    def canonical(self, kind: str, expr: str, type_: str) -> str:
        if kind in (INTEGER, NUMBER):
            return f"dpone_number(CAST({expr} AS VARCHAR))"
        if kind == DATE_TIME:
            ts = f"CAST({expr} AS TIMESTAMPTZ)"
            return f"CASE WHEN isfinite({ts}) THEN CAST(epoch_us({ts}) AS VARCHAR) ELSE CAST({ts} AS VARCHAR) END"
        if kind == DATE:
            day = f"CAST({expr} AS DATE)"
            return (
                f"CASE WHEN isfinite({day}) THEN CAST({day} - DATE '1970-01-01' AS VARCHAR) "
                f"ELSE CAST({day} AS VARCHAR) END"
            )
        if kind == TIME:
            return f"CAST(datediff('microsecond', TIME '00:00:00', CAST({expr} AS TIME)) AS VARCHAR)"
        if kind == BOOLEAN:
            flag = f"CAST({expr} AS BOOLEAN)"
            return f"CASE WHEN {flag} THEN 'true' WHEN NOT {flag} THEN 'false' END"
        return f"CAST({expr} AS VARCHAR)"

    def row_hash(self, text: str) -> str:
        return f"CAST('0x' || substr(md5({text}), 1, {HASH_HEX_DIGITS}) AS BIGINT)"

    def hash_sum(self, hashes: str) -> str:
        return f"CAST(coalesce(sum({hashes}), 0) % CAST('{CHECKSUM_MODULUS}' AS HUGEINT) AS BIGINT)"

    def cast(self, type_: str) -> str:
        return f"CAST(? AS {type_})"

    def quantiles(self, key: str, fractions: Sequence[float]) -> str:
        return f"quantile_disc({key}, [{', '.join(repr(float(f)) for f in fractions)}])"


WORDS = DuckDBWords()


def column_types(loader: DuckDBLoader, table: str) -> dict[str, str] | None:
    if loader.conn is None:
        return None  # no database file yet: no table
    described = loader.describe_table(table)
    return {name: column.type for name, column in described.items()} if described else None


def reconcile(target: DuckDBTarget, request: Mapping[str, Any]) -> dict[str, Any]:
    return answer_request(target, request, WORDS, column_types)
