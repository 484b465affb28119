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
