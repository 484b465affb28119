"""How PostgreSQL says the reconcile queries (dpone_drivers/reconcile_sql.py): tap-postgres and
target-postgres both count with these words, so a PostgreSQL source and destination agree by
construction, and tests hold them to DuckDB's (targets/duckdb/reconcile.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dpone_drivers.reconcile_sql import Words
from dpone_protocol.reconcile import BOOLEAN, CHECKSUM_MODULUS, DATE, DATE_TIME, HASH_HEX_DIGITS, INTEGER, NUMBER, TIME

# Compared byte-wise (COLLATE "C"): the order DuckDB and every other side uses for text, whatever
# the database's own collation says.
TEXT_TYPES = frozenset({"text", "character varying", "character", "name"})
# The types of a table's columns, without modifiers (a bound is cast to numeric, not numeric(10,2),
# so a cut point is never rounded); none when there is no such table.
COLUMN_TYPES = """
SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""


class PostgresWords(Words):
    param = "%s"
    text_type = "text"

    def setup(self) -> list[str]:
        # A time without offset is UTC (as every dpone connector reads it); floats print their
        # shortest exact text (the default since PostgreSQL 12, set in case a server changed it).
        return ["SET TimeZone = 'UTC'", "SET extra_float_digits = 1"]

    def canonical(self, kind: str, expr: str, type_: str) -> str:
        if kind in (INTEGER, NUMBER):
            # Through text: a float reads as its shortest exact text; a float tap-postgres renders as
            # JSON prints NaN and Infinity quoted.
            return f"trim_scale(CAST(btrim(CAST({expr} AS text), '\"') AS numeric))::text"
        if kind == DATE_TIME:
            ts = f"CAST({expr} AS timestamp with time zone)"
            return (
                f"CASE WHEN isfinite({ts}) THEN trim_scale(extract(epoch FROM {ts}) * 1000000)::text "
                f"ELSE CAST({ts} AS text) END"
            )
        if kind == DATE:
            day = f"CAST({expr} AS date)"
            return f"CASE WHEN isfinite({day}) THEN ({day} - DATE '1970-01-01')::text ELSE CAST({day} AS text) END"
        if kind == TIME:
            return f"trim_scale(extract(epoch FROM CAST({expr} AS time)) * 1000000)::text"
        if kind == BOOLEAN:
            flag = f"CAST({expr} AS boolean)"
            return f"CASE WHEN {flag} THEN 'true' WHEN NOT {flag} THEN 'false' END"
        return f"CAST({expr} AS text)"

    def row_hash(self, text: str) -> str:
        bits = HASH_HEX_DIGITS * 4
        return f"('x' || substr(md5(convert_to({text}, 'UTF8')), 1, {HASH_HEX_DIGITS}))::bit({bits})::bigint"

    def hash_sum(self, hashes: str) -> str:
        return f"mod(coalesce(sum({hashes}), 0), {CHECKSUM_MODULUS}::numeric)::bigint"

    def cast(self, type_: str) -> str:
        return f"CAST(%s AS {type_})"

    def key(self, expr: str, type_: str) -> str:
        return f'{expr} COLLATE "C"' if type_ in TEXT_TYPES else expr

    def quantiles(self, key: str, fractions: Sequence[float]) -> str:
        listed = ", ".join(repr(float(f)) for f in fractions)
        return f"percentile_disc(ARRAY[{listed}]::float8[]) WITHIN GROUP (ORDER BY {key})"


WORDS = PostgresWords()


def column_types(conn: Any, table_ref: str) -> dict[str, str] | None:
    """Column -> type of the table `table_ref` (quoted, qualified), or None when it does not exist."""
    rows = conn.execute(COLUMN_TYPES, (table_ref,)).fetchall()
    return {name: type_ for name, type_ in rows} or None


def query(conn: Any) -> Any:
    """The Query of a psycopg connection (reconcile_sql.Query)."""

    def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return list(conn.execute(sql, list(params) or None).fetchall())

    return run
