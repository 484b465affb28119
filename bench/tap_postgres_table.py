"""The tap benchmark's table: where it lives, its columns, and the SQL that creates and fills it."""

from __future__ import annotations

from bench.records import COUNTRIES, FIRST_NAMES, LAST_NAMES

DATABASE = "bench"
SCHEMA = "public"
TABLE = "bench_records"
COLUMNS = ("id", "name", "email", "country", "score", "amount", "active", "updated_at", "birth_date", "parent_id")


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


CREATE_SQL = f"""
CREATE TABLE {SCHEMA}.{TABLE} (
    id bigint PRIMARY KEY,
    name text,
    email text,
    country varchar(2),
    score double precision,
    amount numeric(12,2),
    active boolean,
    updated_at timestamptz,
    birth_date date,
    parent_id bigint
)
"""

# Same shapes as bench/records.py: "First Last", first.last<id>@example.com, amounts with cents,
# 70% true, a timestamp 7 s apart per id with milliseconds, 20% NULL parents pointing below the id.
# Names come from hashes of the id, the rest from random() after setseed(): the same table every run.
FILL_SQL = f"""
SELECT setseed(0.2024);
INSERT INTO {SCHEMA}.{TABLE}
SELECT i, f || ' ' || l, lower(f) || '.' || lower(l) || i || '@example.com', country, score, amount,
       active, updated_at, birth_date, parent_id
FROM (
    SELECT g.i,
           ({_array(FIRST_NAMES)})[1 + (hashint8(g.i) & 2147483647) % {len(FIRST_NAMES)}] AS f,
           ({_array(LAST_NAMES)})[1 + (hashint8(-g.i) & 2147483647) % {len(LAST_NAMES)}] AS l,
           ({_array(COUNTRIES)})[1 + floor(random() * {len(COUNTRIES)})::int] AS country,
           random() * 2000 - 1000 AS score,
           round((random() * 100000)::numeric, 2) AS amount,
           random() < 0.7 AS active,
           timestamptz '2024-01-01 00:00:00+00' + g.i * interval '7 seconds'
               + floor(random() * 1000) * interval '1 millisecond' AS updated_at,
           date '1950-01-01' + floor(random() * 20000)::int AS birth_date,
           CASE WHEN random() < 0.2 THEN NULL ELSE 1 + floor(random() * g.i)::bigint END AS parent_id
    FROM generate_series(1, {{rows}}) AS g(i)
) AS s;
"""
