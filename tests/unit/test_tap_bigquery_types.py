"""tap-bigquery's type map for what the emulator does not keep (BIGNUMERIC, INTERVAL, GEOGRAPHY,
parameterized types, PRIMARY KEY constraints), on the client library's own schema objects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

bigquery = pytest.importorskip("google.cloud.bigquery")

from dpone.taps.bigquery.discovery import _primary_key  # noqa: E402
from dpone.taps.bigquery.type_map import (  # noqa: E402
    bookmark_order,
    converter,
    field_schema,
    interval_text,
    parameter_value,
)
from dpone_protocol.errors import ConfigError  # noqa: E402


def field(api: dict[str, Any]) -> Any:
    return bigquery.SchemaField.from_api_repr(api)


def convert(api: dict[str, Any], value: Any, arrow: bool = False) -> Any:
    fn = converter(field(api), arrow)
    return value if fn is None else fn(value)


def test_bignumeric_keeps_38_decimals_and_its_precision() -> None:
    f = {"name": "v", "type": "BIGNUMERIC"}
    assert field_schema(field(f)) == {
        "type": ["string", "null"],
        "format": "singer.decimal",
        "precision": 77,
        "scale": 38,
    }
    text = "-578960446186580977117854925043439539266.34992332820282019728792003956564819968"
    assert convert(f, Decimal(text)) == text
    assert convert(f, Decimal("1.12345678901234567890123456789012345678")) == "1.12345678901234567890123456789012345678"
    assert convert(f, Decimal("1E-38")) == "0.00000000000000000000000000000000000001"


def test_parameterized_types_say_their_bounds() -> None:
    assert field_schema(
        field({"name": "v", "type": "NUMERIC", "precision": "10", "scale": "2", "mode": "REQUIRED"})
    ) == {
        "type": "string",
        "format": "singer.decimal",
        "precision": 10,
        "scale": 2,
    }
    assert field_schema(field({"name": "s", "type": "STRING", "maxLength": "5"}))["maxLength"] == 5


def test_interval_geography_and_json() -> None:
    assert field_schema(field({"name": "i", "type": "INTERVAL"})) == {"type": ["string", "null"]}
    assert field_schema(field({"name": "g", "type": "GEOGRAPHY"})) == {"type": ["string", "null"]}
    assert convert({"name": "g", "type": "GEOGRAPHY"}, "POINT(1 2)") == "POINT(1 2)"
    # The Storage Read API gives JSON as text (numbers keep every digit); REST gives it parsed.
    j = {"name": "j", "type": "JSON"}
    assert convert(j, '{"a": 0.10000000000000000001}', arrow=True) == {"a": Decimal("0.10000000000000000001")}
    assert convert(j, "text", arrow=False) == "text"


class _MonthDayNano:
    def __init__(self, months: int, days: int, nanoseconds: int) -> None:
        self.months, self.days, self.nanoseconds = months, days, nanoseconds


def test_interval_text_from_either_read_path() -> None:
    from dateutil.relativedelta import relativedelta

    assert interval_text("1-2 3 4:5:6.5") == "1-2 3 4:5:6.5"
    assert (
        interval_text(relativedelta(years=1, months=2, days=3, hours=4, minutes=5, seconds=6, microseconds=500000))
        == "1-2 3 4:5:6.5"
    )
    assert interval_text(_MonthDayNano(-14, -3, -3_723_000_001_000)) == "-1-2 -3 -1:2:3.000001"
    assert interval_text(_MonthDayNano(0, 0, 0)) == "0-0 0 0:0:0"


def test_floats_timestamps_and_repeated() -> None:
    f = {"name": "f", "type": "FLOAT"}
    assert [convert(f, v) for v in (float("nan"), float("inf"), float("-inf"), -0.0)] == [
        "NaN",
        "Infinity",
        "-Infinity",
        -0.0,
    ]
    ts = {"name": "t", "type": "TIMESTAMP"}
    assert convert(ts, dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)) == "2024-01-02T03:04:05.000006+00:00"
    assert convert(ts, dt.datetime(1, 1, 1, tzinfo=dt.UTC)) == "0001-01-01T00:00:00+00:00"
    arr = {"name": "a", "type": "BYTES", "mode": "REPEATED"}
    assert convert(arr, None) == [] and convert(arr, [b"\x00\xff"]) == ["AP8="]


def test_the_primary_key_constraint_is_the_stream_key() -> None:
    table = bigquery.Table.from_api_repr(
        {
            "tableReference": {"projectId": "p", "datasetId": "d", "tableId": "t"},
            "tableConstraints": {"primaryKey": {"columns": ["a", "b"]}},
        }
    )
    assert _primary_key(table) == ["a", "b"]
    bare = bigquery.Table.from_api_repr({"tableReference": {"projectId": "p", "datasetId": "d", "tableId": "t"}})
    assert _primary_key(bare) == []


def test_bookmarks_compare_by_value_and_read_back_typed() -> None:
    assert bookmark_order("2024-01-01T00:00:00.5+00:00") > bookmark_order("2024-01-01T00:00:00+00:00")
    assert bookmark_order("2024-01-01T01:00:00+01:00") == bookmark_order("2024-01-01T00:00:00Z")
    assert bookmark_order("10.5") > bookmark_order("9.75")
    assert bookmark_order(10) > bookmark_order(9.5)
    assert parameter_value("TIMESTAMP", "2024-01-01", "s") == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert parameter_value("DATE", "2024-01-01T00:00:00Z", "s") == dt.date(2024, 1, 1)
    assert parameter_value("BIGNUMERIC", "0.1", "s") == Decimal("0.1")
    with pytest.raises(ConfigError, match="'x' is not a INT64"):
        parameter_value("INT64", "x", "s")
