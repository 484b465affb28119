"""tap-postgres | target-duckdb: every type of the all-types table comes out of DuckDB as it went into
PostgreSQL, or the load stops naming the input line and the column (DESIGN rule 7).

The source is test_postgres_round_trip's every_type table (ordinary row, all NULLs, extremes) plus
rows of values DuckDB stores differently from PostgreSQL (BC, infinity, 30-digit and infinite
numerics, negative zero). The real executables run in a pipe; each value is then compared with the
source, both sides rendered as text (PostgreSQL's form; DuckDB's `(BC)` and `+00` put in it) or, for
floats and JSON, as numbers read exactly. An unconstrained numeric of 30 or 40 digits needs
`unbounded_numbers: varchar`; the default DOUBLE takes the numerics a double holds and stops on the others.
"""

from __future__ import annotations

import decimal
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from tests.service.test_postgres_round_trip import fill_source
from tests.service.test_tap_postgres import Source, q

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
TAP = str(BIN / "tap-postgres")
TARGET = str(BIN / "target-duckdb")

# Values PostgreSQL holds that DuckDB stores in another form (or only as text).
DUCKDB_ROWS: list[dict[str, Any]] = [
    {
        "id": 6,
        "c_timestamptz": "4713-01-01 00:00:00+00 BC",
        "c_timestamp": "0044-03-15 12:00:00.5 BC",
        "c_date": "4713-01-01 BC",
        "c_numeric": "123456789012345678901234567890",
        "c_numeric_ps": "0.0001",
        "c_real": "-0",
        "c_double": "-0",
        "c_json": '{"n": 0.33333333333333333333, "big": 123456789012345678901234567890.123456789}',
        "c_jsonb": '{"n": 0.33333333333333333333, "big": 123456789012345678901234567890.123456789}',
        "c_not_null": "bc",
    },
    {
        "id": 7,
        "c_timestamptz": "infinity",
        "c_timestamp": "-infinity",
        "c_date": "5874897-12-31",
        "c_numeric": "-Infinity",
        "c_money": "-92233720368547758.08",
        "c_time": "00:00:00.000001",
        "c_not_null": "inf",
    },
    {
        "id": 8,
        "c_numeric": "Infinity",
        "c_date": "infinity",
        "c_numeric_array": "{NaN,Infinity,1e-30}",
        "c_not_null": "",
    },
]

# Column -> (PostgreSQL expression, DuckDB expression, how the two are compared).
TEXT, FLOAT, JSON = "text", "float", "json"
COMPARE: dict[str, tuple[str, str, str]] = {
    "c_smallint": ("c_smallint::text", "c_smallint::VARCHAR", TEXT),
    "c_integer": ("c_integer::text", "c_integer::VARCHAR", TEXT),
    "c_bigint": ("c_bigint::text", "c_bigint::VARCHAR", TEXT),
    "c_numeric_ps": ("c_numeric_ps::text", "c_numeric_ps::VARCHAR", TEXT),
    "c_numeric": ("c_numeric::text", "c_numeric", TEXT),
    "c_real": ("c_real::float8::text", "c_real::DOUBLE::VARCHAR", FLOAT),
    "c_double": ("c_double::text", "c_double::VARCHAR", FLOAT),
    "c_boolean": ("c_boolean::text", "c_boolean::VARCHAR", TEXT),
    "c_text": ("c_text", "c_text", TEXT),
    "c_varchar": ("c_varchar::text", "c_varchar", TEXT),
    "c_char": ("c_char::text", "c_char", TEXT),
    "c_timestamptz": ("c_timestamptz::text", "c_timestamptz::VARCHAR", TEXT),
    "c_timestamp": ("(c_timestamp AT TIME ZONE 'UTC')::text", "c_timestamp::VARCHAR", TEXT),  # lands as UTC
    "c_date": ("c_date::text", "c_date::VARCHAR", TEXT),
    "c_time": ("c_time::text", "c_time::VARCHAR", TEXT),
    "c_interval": ("c_interval::text", "c_interval", TEXT),
    "c_json": ("c_json::text", "c_json::VARCHAR", JSON),
    "c_jsonb": ("c_jsonb::text", "c_jsonb::VARCHAR", JSON),
    "c_int_array": ("to_json(c_int_array)::text", "c_int_array::VARCHAR", JSON),
    "c_text_array": ("to_json(c_text_array)::text", "c_text_array::VARCHAR", JSON),
    "c_numeric_array": ("to_json(c_numeric_array::text[])::text", "c_numeric_array::VARCHAR", JSON),
    "c_uuid": ("c_uuid::text", "c_uuid::VARCHAR", TEXT),
    "c_bytea": ("translate(encode(c_bytea, 'base64'), E'\\n', '')", "c_bytea", TEXT),
    "c_inet": ("c_inet::text", "c_inet", TEXT),
    "c_cidr": ("c_cidr::text", "c_cidr", TEXT),
    "c_macaddr": ("c_macaddr::text", "c_macaddr", TEXT),
    "c_enum": ("c_enum::text", "c_enum", TEXT),
    "c_domain_int": ("c_domain_int::text", "c_domain_int::VARCHAR", TEXT),
    "c_domain_text": ("c_domain_text::text", "c_domain_text", TEXT),
    "c_domain_numeric": ("c_domain_numeric::numeric::text", "c_domain_numeric::VARCHAR", TEXT),
    "c_money": ("c_money::numeric::text", "c_money", TEXT),
    "c_timetz": ("c_timetz::text", "c_timetz", TEXT),
    "c_not_null": ("c_not_null", "c_not_null", TEXT),
}
# The DuckDB column each PostgreSQL type becomes under `unbounded_numbers: varchar`
# (docs/connectors/target-duckdb.md, Type mapping).
DUCKDB_TYPES = {
    "id": "BIGINT",
    "c_smallint": "BIGINT",
    "c_bigint": "BIGINT",
    "c_numeric_ps": "DECIMAL(12,4)",
    "c_numeric": "VARCHAR",
    "c_real": "FLOAT",
    "c_double": "DOUBLE",
    "c_boolean": "BOOLEAN",
    "c_varchar": "VARCHAR",
    "c_timestamptz": "TIMESTAMP WITH TIME ZONE",
    "c_timestamp": "TIMESTAMP WITH TIME ZONE",
    "c_date": "DATE",
    "c_time": "TIME",
    "c_interval": "VARCHAR",
    "c_json": "JSON",
    "c_jsonb": "JSON",
    "c_int_array": "JSON",
    "c_uuid": "UUID",
    "c_bytea": "VARCHAR",
    "c_domain_numeric": "DECIMAL(10,2)",
    "c_money": "VARCHAR",
    "c_timetz": "VARCHAR",
}


def pg_form(duck_text: str) -> str:
    """DuckDB's rendering of a BC date or timestamp in PostgreSQL's: `0044-03-15 (BC) 12:00:00+00`
    is `0044-03-15 12:00:00+00 BC`."""
    return duck_text.replace(" (BC)", "") + " BC" if " (BC)" in duck_text else duck_text


def exact_json(text: str) -> Any:
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


def same(kind: str, source: str | None, dest: str | None) -> bool:
    if source is None or dest is None:
        return source is dest
    if kind == JSON:
        return bool(exact_json(source) == exact_json(dest))
    if kind == FLOAT:
        a, b = float(source), float(dest)
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return source == pg_form(dest)


def pipe(src: Source, table: str, db: Path, **target: Any) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """tap-postgres | target-duckdb on `table`; the target's run and the tap's output (to name lines)."""
    catalog = src.file("catalog", src.catalog(table).to_dict())
    tap = subprocess.run(
        [TAP, "--config", src.file("tap", src.config()), "--catalog", catalog], capture_output=True, check=False
    )
    assert tap.returncode == 0, tap.stderr.decode()
    config = {"filepath": str(db), "table_name_map": {src.stream(table): table}, **target}
    loaded = subprocess.run(
        [TARGET, "--config", src.file("target", config)], input=tap.stdout, capture_output=True, check=False
    )
    return loaded, tap.stdout


def line_of(tapped: bytes, row_id: int) -> int:
    """The input line of the RECORD of row `row_id`."""
    for number, raw in enumerate(tapped.splitlines(), 1):
        message = orjson.loads(raw)
        if message.get("type") == "RECORD" and message["record"].get("id") == row_id:
            return number
    raise AssertionError(f"no RECORD for id {row_id}")


def duck_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql).fetchall()


def insert(src: Source, table: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        columns = ", ".join(q(c) for c in row)
        src.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(row))})",
            list(row.values()),
        )


# -- the type class ------------------------------------------------------------------------------------------


@pytest.mark.certifies("types", connector=("tap-postgres", "target-duckdb"))
def test_every_type_lands_exactly_through_a_pipe(src, tmp_path):
    fill_source(src)
    insert(src, "every_type", DUCKDB_ROWS)
    db = tmp_path / "dest.duckdb"
    # The 30- and 40-digit numerics and money's 19 digits are more than a double holds: their text, then.
    loaded, _ = pipe(src, "every_type", db, batch_size_rows=3, unbounded_numbers="varchar")
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert loaded.stdout.strip(), "the target echoed no state"

    types = dict(duck_rows(db, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'every_type'"))
    assert {c: types[c] for c in DUCKDB_TYPES} == DUCKDB_TYPES
    source = {
        r[0]: r[1:] for r in src.rows(f"SELECT id, {', '.join(p for p, _, _ in COMPARE.values())} FROM every_type")
    }
    dest = {
        r[0]: r[1:] for r in duck_rows(db, f"SELECT id, {', '.join(d for _, d, _ in COMPARE.values())} FROM every_type")
    }
    assert sorted(dest) == sorted(source) == [1, 2, 3, 4, 5, 6, 7, 8]
    differing = [
        (row_id, column, source[row_id][i], dest[row_id][i])
        for row_id in source
        for i, (column, (_, _, kind)) in enumerate(COMPARE.items())
        if not same(kind, source[row_id][i], dest[row_id][i])
    ]
    assert differing == []


def test_the_json_number_text_is_kept_digit_for_digit(src, tmp_path):
    src.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, j jsonb, t json)",
        """INSERT INTO docs VALUES (1, '{"big": 123456789012345678901234567890, "exact": 0.1000000000000000055511}', """
        """'{"third": 0.33333333333333333333}')""",
    )
    db = tmp_path / "dest.duckdb"
    loaded, _ = pipe(src, "docs", db)
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert duck_rows(db, "SELECT j::VARCHAR, t::VARCHAR FROM docs") == [
        ('{"big":123456789012345678901234567890,"exact":0.1000000000000000055511}', '{"third":0.33333333333333333333}')
    ]


# -- documented stops: the line and the column of the value DuckDB cannot hold --------------------------------


@pytest.mark.parametrize(
    ("ddl", "value", "message"),
    [
        ("numeric(12,4)", "NaN", "'NaN' does not fit DECIMAL(12,4): a DuckDB DECIMAL holds no NaN or Infinity"),
        (
            "timestamptz",
            "294276-12-31 23:59:59.999999+00",
            "'294276-12-31T23:59:59.999999+00:00' does not fit TIMESTAMP WITH TIME ZONE "
            "(timestamp field value out of range",
        ),
        (
            "timestamp",
            "294276-12-31 23:59:59.999999",
            "'294276-12-31T23:59:59.999999' does not fit TIMESTAMP WITH TIME ZONE (timestamp field value out of range",
        ),
    ],
)
def test_a_value_duckdb_cannot_hold_stops_naming_the_line_and_column(src, tmp_path, ddl, value, message):
    src.sql(f"CREATE TABLE edge (id int PRIMARY KEY, v {ddl})", "INSERT INTO edge VALUES (1, NULL), (2, NULL)")
    src.conn.execute("INSERT INTO edge VALUES (3, %s)", (value,))
    db = tmp_path / "dest.duckdb"
    loaded, tapped = pipe(src, "edge", db)
    assert loaded.returncode == 65, loaded.stderr.decode()
    error = loaded.stderr.decode().strip().splitlines()[-1]
    stream = src.stream("edge")
    assert error.startswith(
        f"target-duckdb: data error: line {line_of(tapped, 3)}, stream {stream!r}, column 'v': {message}"
    )
    assert loaded.stdout == b""  # the batch never committed: no state echoed
    assert duck_rows(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'edge'") in ([(0,)], [(1,)])


NUMERICS = ["1234.56", "-0.5", "0.1", "0.30000000000000004", "1e-300", "9007199254740992", "NaN", "-0"]


def test_the_default_loads_numerics_a_double_holds_as_double_exactly(src, tmp_path):
    src.sql("CREATE TABLE plain (id int PRIMARY KEY, n numeric)")
    insert(src, "plain", [{"id": i, "n": n} for i, n in enumerate(NUMERICS, 1)] + [{"id": 99, "n": None}])
    db = tmp_path / "dest.duckdb"
    loaded, _ = pipe(src, "plain", db)
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert duck_rows(db, "SELECT data_type FROM duckdb_columns() WHERE column_name = 'n'") == [("DOUBLE",)]
    source = dict(src.rows("SELECT id, n::text FROM plain"))
    dest = dict(duck_rows(db, "SELECT id, n FROM plain"))
    assert sorted(dest) == sorted(source)
    for row_id, text in source.items():
        got = dest[row_id]
        if text is None or text == "NaN":
            assert got is None if text is None else math.isnan(got), (row_id, text, got)
        else:
            # The double is the numeric: its shortest text reads back as the same number.
            assert decimal.Decimal(repr(got)) == decimal.Decimal(text), (row_id, text, got)
    assert duck_rows(db, "SELECT sum(n) FROM plain WHERE id <= 2") == [(1234.06,)]  # sums work


def test_the_default_stops_on_a_numeric_a_double_would_round(src, tmp_path):
    forty = "1234567890123456789012345678901234567890.0123456789"
    src.sql("CREATE TABLE wide (id int PRIMARY KEY, n numeric)")
    insert(src, "wide", [{"id": 1, "n": "1234.56"}, {"id": 2, "n": "-0.5"}, {"id": 3, "n": forty}])
    db = tmp_path / "dest.duckdb"
    loaded, tapped = pipe(src, "wide", db)
    assert loaded.returncode == 65, loaded.stderr.decode()
    error = loaded.stderr.decode().strip().splitlines()[-1]
    assert error == (
        f"target-duckdb: data error: line {line_of(tapped, 3)}, stream {src.stream('wide')!r}, column 'n': "
        f"{forty!r} would be rounded by a DOUBLE column (unbounded_numbers: varchar keeps every number as text)"
    )
    assert loaded.stdout == b""  # the batch never committed: no state echoed
    # The setting the message names keeps every digit (in a new file: the table may have been made DOUBLE).
    db = tmp_path / "text.duckdb"
    loaded, _ = pipe(src, "wide", db, unbounded_numbers="varchar")
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert duck_rows(db, "SELECT id, n FROM wide ORDER BY id") == [(1, "1234.56"), (2, "-0.5"), (3, forty)]


def test_the_decimal_setting_stops_on_a_numeric_wider_than_38_digits(src, tmp_path):
    src.sql("CREATE TABLE wide (id int PRIMARY KEY, n numeric)", "INSERT INTO wide VALUES (1, 1.5), (2, 1e40)")
    db = tmp_path / "dest.duckdb"
    loaded, tapped = pipe(src, "wide", db, unbounded_numbers="decimal")
    assert loaded.returncode == 65
    error = loaded.stderr.decode().strip().splitlines()[-1]
    assert f"line {line_of(tapped, 2)}, stream {src.stream('wide')!r}, column 'n': " in error
    assert "has 41 digits before the point; DECIMAL(38,9) holds 29" in error


# -- cases that depend on how tap-postgres renders values ----------------------------------------------------


def test_multidimensional_arrays_keep_their_dimensions(src, tmp_path):
    src.sql(
        "CREATE TABLE grids (id int PRIMARY KEY, i int[], n numeric[], t text[])",
        "INSERT INTO grids VALUES (1, '{{1,2},{3,4}}', '{{1.10,NaN},{2,3}}', '{{a,NULL},{\"b c\",d}}'), "
        "(2, '{}', '{}', '{}')",
    )
    db = tmp_path / "dest.duckdb"
    loaded, _ = pipe(src, "grids", db)
    assert loaded.returncode == 0, loaded.stderr.decode()
    source = dict(
        (r[0], r[1:])
        for r in src.rows("SELECT id, to_json(i)::text, to_json(n::text[])::text, to_json(t)::text FROM grids")
    )
    dest = dict((r[0], r[1:]) for r in duck_rows(db, "SELECT id, i::VARCHAR, n::VARCHAR, t::VARCHAR FROM grids"))
    assert {k: [exact_json(v) for v in vs] for k, vs in dest.items()} == {
        k: [exact_json(v) for v in vs] for k, vs in source.items()
    }


def test_a_json_null_document_lands_as_sql_null_and_the_tap_says_so(src, tmp_path):
    """A record has one null for SQL NULL and a JSON null document (docs/connectors/tap-postgres.md,
    JSON null): the loss is not silent, the tap counts it in a warning."""
    src.sql("CREATE TABLE nulls (id int PRIMARY KEY, j jsonb)", "INSERT INTO nulls VALUES (1, 'null'), (2, NULL)")
    catalog = src.file("catalog", src.catalog("nulls").to_dict())
    tap = subprocess.run(
        [TAP, "--config", src.file("tap", src.config()), "--catalog", catalog], capture_output=True, check=False
    )
    assert tap.returncode == 0, tap.stderr.decode()
    assert b"1 rows held JSON null in a json/jsonb column" in tap.stderr
    db = tmp_path / "dest.duckdb"
    loaded, _ = pipe(src, "nulls", db)
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert duck_rows(db, "SELECT id, j::VARCHAR FROM nulls ORDER BY id") == [(1, None), (2, None)]
