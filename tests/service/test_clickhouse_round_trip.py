"""tap-postgres | target-clickhouse: every type of the all-types table comes out of ClickHouse as it went
into PostgreSQL (the installed executables in a pipe, on the embedded engine). Unconstrained numerics of
30 digits need `unbounded_numbers: string`; each value is compared with the source as a number, an
instant, JSON read exactly, or text."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.service.clickhouse_dest import ClickHouseDest
from tests.service.test_postgres_round_trip import fill_source
from tests.service.test_tap_postgres import Source

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
TEXT, NUMBER, FLOAT, INSTANT, DATE, JSON = "text", "number", "float", "instant", "date", "json"
# Column -> (PostgreSQL expression, how it compares). ClickHouse's side is the column itself.
COMPARE: dict[str, tuple[str, str]] = {
    "c_smallint": ("c_smallint", NUMBER),
    "c_integer": ("c_integer", NUMBER),
    "c_bigint": ("c_bigint", NUMBER),
    "c_numeric_ps": ("c_numeric_ps", NUMBER),
    "c_numeric": ("c_numeric::text", NUMBER),
    "c_real": ("c_real::float8", FLOAT),
    "c_double": ("c_double", FLOAT),
    "c_boolean": ("c_boolean", TEXT),
    "c_text": ("c_text", TEXT),
    "c_varchar": ("c_varchar", TEXT),
    "c_char": ("c_char::text", TEXT),
    "c_timestamptz": ("c_timestamptz", INSTANT),
    "c_timestamp": ("c_timestamp AT TIME ZONE 'UTC'", INSTANT),
    "c_date": ("c_date", DATE),
    "c_json": ("c_json::text", JSON),
    "c_jsonb": ("c_jsonb::text", JSON),
    "c_int_array": ("to_json(c_int_array)::text", JSON),
    "c_text_array": ("to_json(c_text_array)::text", JSON),
    "c_uuid": ("c_uuid::text", TEXT),
    "c_enum": ("c_enum::text", TEXT),
    "c_domain_numeric": ("c_domain_numeric::numeric", NUMBER),
    "c_not_null": ("c_not_null", TEXT),
}


def exact_json(text: str) -> Any:
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


def same(kind: str, source: Any, dest: Any) -> bool:
    if source is None or dest is None:
        return source is None and dest in (None, [], "")
    if kind == NUMBER:
        return str(source) == str(dest) or decimal.Decimal(str(source)) == decimal.Decimal(str(dest))
    if kind == FLOAT:
        a, b = float(source), float(dest)
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if kind == INSTANT:
        as_utc = source if source.tzinfo else source.replace(tzinfo=dt.UTC)
        return bool(as_utc == dest.replace(tzinfo=dt.UTC))
    if kind == JSON:
        value = exact_json(source)
        if isinstance(value, str):
            # A JSON string in a column of any JSON lands as its text (docs: type mapping).
            return value == dest
        return bool(value == (exact_json(dest) if isinstance(dest, str) else dest))
    return str(source).lower() == str(dest).lower()


@pytest.mark.certifies("types", connector=("tap-postgres", "target-clickhouse"))
def test_every_postgres_type_lands_exactly(src: Source, tmp_path: Path) -> None:
    fill_source(src)
    dest = ClickHouseDest(tmp_path / "clickhouse")
    tap = subprocess.run(
        [
            BIN / "tap-postgres",
            "--config",
            src.file("tap", src.config()),
            "--catalog",
            src.file("catalog", src.catalog("every_type").to_dict()),
        ],
        capture_output=True,
        check=False,
    )
    assert tap.returncode == 0, tap.stderr.decode()
    config = dest.config(table_name_map={src.stream("every_type"): "every_type"}, unbounded_numbers="string")
    loaded = subprocess.run(
        [BIN / "target-clickhouse", "--config", src.file("target", config)],
        input=tap.stdout,
        capture_output=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr.decode()
    source = {r[0]: r[1:] for r in src.rows(f"SELECT id, {', '.join(e for e, _ in COMPARE.values())} FROM every_type")}
    rows = {r["id"]: r for r in dest.rows("every_type") or []}
    assert sorted(rows) == sorted(source)
    differing = [
        (row_id, column, source[row_id][i], rows[row_id][column])
        for row_id in source
        for i, (column, (_, kind)) in enumerate(COMPARE.items())
        if not same(kind, source[row_id][i], rows[row_id][column])
    ]
    assert differing == []


# -- ClickHouse -> PostgreSQL ---------------------------------------------------------------------------------

CH_TABLE = """CREATE TABLE dw.every_type (
    id Int64, i8 Nullable(Int8), u32 Nullable(UInt32), i64 Nullable(Int64), d18 Nullable(Decimal(18, 4)),
    d38 Nullable(Decimal(38, 10)), f32 Nullable(Float32), f64 Nullable(Float64), b Nullable(Bool),
    s Nullable(String), lc LowCardinality(String), u Nullable(UUID), d Nullable(Date32),
    ts Nullable(DateTime64(6, 'UTC')), tz Nullable(DateTime64(3, 'Asia/Tokyo')), ai Array(Int64), a_s Array(String)
) ENGINE = MergeTree ORDER BY id"""
CH_ROWS = """INSERT INTO dw.every_type VALUES
    (1, -128, 4294967295, -9223372036854775808, 99999999999999.9999, 1234567890123456789012345678.0123456789,
     1.5, 0.30000000000000004, true, 'café "q" \\n ✓', 'DE', '0b6c3b3e-8f4e-4c3a-9a55-7d2f7a3c1e10',
     '1900-01-01', '2024-02-29 23:59:59.123456', '2024-01-01 09:00:00.123', [1, -2], ['a', '']),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, [], [])"""
# Column -> (ClickHouse expression, PostgreSQL expression): both rendered as text in one canonical form.
CH_COMPARE = {
    "i8": ("toString(i8)", "i8::text"),
    "u32": ("toString(u32)", "u32::text"),
    "i64": ("toString(i64)", "i64::text"),
    "d18": ("toString(d18)", "trim_scale(d18)::text"),
    "d38": ("toString(d38)", "trim_scale(d38)::text"),
    "f32": ("toString(f32)", "f32::text"),
    "f64": ("toString(f64)", "f64::text"),
    "b": ("if(isNull(b), NULL, if(b, 't', 'f'))", "left(b::text, 1)"),
    "s": ("s", "s"),
    "lc": ("lc", "lc"),
    "u": ("toString(u)", "u::text"),
    "d": ("toString(d)", "d::text"),
    "ts": ("formatDateTime(ts, '%Y-%m-%d %H:%i:%S.%f')", "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"),
    "tz": (
        "formatDateTime(toTimeZone(tz, 'UTC'), '%Y-%m-%d %H:%i:%S')",
        "to_char(tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
    ),
    "ai": ("toJSONString(ai)", "ai::text"),
    "a_s": ("toJSONString(a_s)", "a_s::text"),
}


def same_value(clickhouse: Any, postgres: Any) -> bool:
    """Equal as text, as JSON arrays (ClickHouse's [] is an empty array, its '' an empty string)."""
    if clickhouse == postgres:
        return True
    if isinstance(clickhouse, str) and clickhouse.startswith("["):
        return bool(json.loads(clickhouse) == (json.loads(postgres) if postgres is not None else []))
    return False


@pytest.mark.certifies("types", connector=("tap-clickhouse", "target-postgres"))
def test_every_clickhouse_type_lands_in_postgres(pg: Any, tmp_path: Path) -> None:
    source = ClickHouseDest(tmp_path / "clickhouse")
    with source.client() as client:
        client.command("CREATE DATABASE dw")
        client.command(CH_TABLE)
        client.command(CH_ROWS)
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(json.dumps(source.config()))
    discovered = subprocess.run(
        [BIN / "tap-clickhouse", "--config", tap_config, "--discover"], capture_output=True, check=False
    )
    assert discovered.returncode == 0, discovered.stderr.decode()
    catalog = tmp_path / "catalog.json"
    catalog.write_bytes(discovered.stdout)
    tap = subprocess.run(
        [BIN / "tap-clickhouse", "--config", tap_config, "--catalog", catalog], capture_output=True, check=False
    )
    assert tap.returncode == 0, tap.stderr.decode()
    target_config = tmp_path / "target.json"
    target_config.write_text(json.dumps(pg.config(table_name_map={"dw-every_type": "every_type"})))
    loaded = subprocess.run(
        [BIN / "target-postgres", "--config", target_config], input=tap.stdout, capture_output=True, check=False
    )
    assert loaded.returncode == 0, loaded.stderr.decode()
    ch_rows = source.query(f"SELECT id, {', '.join(c for c, _ in CH_COMPARE.values())} FROM dw.every_type ORDER BY id")
    pg_rows = pg.rows(f"SELECT id, {', '.join(p for _, p in CH_COMPARE.values())} FROM every_type ORDER BY id")
    differing = [
        (row[0], column, row[i + 1], other[i + 1])
        for row, other in zip(ch_rows, pg_rows, strict=True)
        for i, column in enumerate(CH_COMPARE)
        if not same_value(row[i + 1], other[i + 1])
    ]
    assert len(pg_rows) == 2 and differing == []
