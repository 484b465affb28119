"""tap-clickhouse on the embedded ClickHouse engine (chdb): every type's values exactly as RECORD JSON,
discovery (schemas, keys, views, filters), bookmarks of exact types, resume over repeated keys, the
errors an operator meets, and the tap as a process piped into target-jsonl.

Each test works in a database of its own (tests/service/clickhouse_source.py). The scenarios every
tap shares are the shared suite's (test_tap_clickhouse_suite.py).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.clickhouse.reader import ChunkReader, ConnectionLost, ServerError, tsv_lines
from dpone.taps.clickhouse.tap import ClickHouseTap
from tests.kit.kit import process_command, process_env
from tests.service.clickhouse_source import (
    EXIT_CONFIG,
    EXIT_DATA,
    EXIT_TRANSIENT,
    Num,
    Source,
    clickhouse_fixture,  # noqa: F401 - provides `clickhouse`
    error_line,
    ok,
    records,
)

pytestmark = pytest.mark.service

DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "tap-clickhouse.md"
CLI = "dpone.taps.clickhouse.cli"

# -- a table with every type ------------------------------------------------------------------------

EVERY_TYPE_DDL = """
CREATE TABLE {db}.every_type (
  id UInt32,
  i8 Int8, i16 Int16, i32 Int32, i64 Int64, i128 Int128, i256 Int256,
  u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64, u128 UInt128, u256 UInt256,
  f32 Float32, f64 Float64, bf16 BFloat16,
  d76 Decimal(76, 38), d9 Decimal(9, 2), d32 Decimal32(3),
  b Bool, s String, fs FixedString(4), e8 Enum8('a' = 1, 'b c' = 2, 'it''s' = 3), lc LowCardinality(String),
  uuid UUID, d Date, d32x Date32, dt DateTime('Asia/Tokyo'), dt64 DateTime64(9, 'UTC'), dt3 DateTime64(3, 'UTC'),
  t Time, ip4 IPv4, ip6 IPv6,
  arr Array(Int32), arrn Array(Nullable(String)), arr2 Array(Array(UInt64)),
  m Map(String, Decimal(10, 2)), mi Map(UInt8, Array(String)),
  tn Tuple(a Int32, `b c` String), tu Tuple(Int32, String), j JSON, nst Nested(x Int32, y String),
  ni Nullable(Int32), ns Nullable(String), lcn LowCardinality(Nullable(String)), nf Nullable(Float64),
  pt Point, dyn Dynamic, var Variant(String, UInt64)
) ENGINE = MergeTree ORDER BY id
"""
EVERY_TYPE_ROWS = r"""
INSERT INTO {db}.every_type VALUES (1,
  127, 32767, 2147483647, 9223372036854775807, 170141183460469231731687303715884105727,
  57896044618658097711785492504343953926634992332820282019728792003956564819967,
  255, 65535, 4294967295, 18446744073709551615, 340282366920938463463374607431768211455,
  115792089237316195423570985008687907853269984665640564039457584007913129639935,
  nan, inf, 1.5,
  '99999999999999999999999999999999999999.99999999999999999999999999999999999999', 1.5, 0.001,
  true, 'é ☃ \t\n\r\x1f\x00 "q" \\ \'s\' / \xe2\x80\xa8 end', 'ab', 'b c', 'low',
  '61f0c404-5cb3-11e7-907b-a6006ad3dba0', '2149-06-06', '2299-12-31', '2024-06-01 09:00:00',
  '2262-04-11 23:47:16.854775807', '2024-01-01 00:00:00.123',
  '-12:34:56', '1.2.3.4', '2001:db8::1',
  [], ['x', NULL], [[1], [], [18446744073709551615]],
  {{'k': 1.50, 'q"': -0.01}}, {{1: ['a'], 2: []}},
  (1, 'x'), (2, 'y'), '{{"a": {{"b": 18446744073709551615, "c": [1.5, "s"]}}}}', [1, 2], ['p', 'q'],
  NULL, NULL, NULL, NULL,
  (1.5, -2), 42, 'v'),
(2,
  -128, -32768, -2147483648, -9223372036854775808, -170141183460469231731687303715884105728,
  -57896044618658097711785492504343953926634992332820282019728792003956564819968,
  0, 0, 0, 0, 0, 0,
  -inf, -0., 0.1,
  '-99999999999999999999999999999999999999.99999999999999999999999999999999999999', -0.5, 0,
  false, '', '', 'a', '',
  '00000000-0000-0000-0000-000000000000', '1970-01-01', '1900-01-01', '1970-01-01 09:00:00',
  '1900-01-01 00:00:00.000000001', '1969-12-31 23:59:59.999',
  '00:00:00', '0.0.0.0', '::',
  [], [], [],
  {{}}, {{}},
  (0, ''), (0, ''), '{{}}', [], [],
  -7, 'n', 'lc', 1e300,
  (0, 0), NULL, NULL)
"""


def _int(lo: Any, hi: Any) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi}


INT32 = _int(-(2**31), 2**31 - 1)
ANY_JSON = {"type": ["object", "array", "string", "number", "boolean", "null"]}
EVERY_TYPE_SCHEMA: dict[str, Any] = {
    "id": _int(0, 2**32 - 1),
    "i8": _int(-128, 127),
    "i16": _int(-(2**15), 2**15 - 1),
    "i32": INT32,
    "i64": _int(-(2**63), 2**63 - 1),
    # Wider than 64 bits: the bounds are floats (orjson writes no wider integer), still past 64 bits.
    "i128": _int(Num("-1.7014118346046923e+38"), Num("1.7014118346046923e+38")),
    "i256": _int(Num("-5.78960446186581e+76"), Num("5.78960446186581e+76")),
    "u8": _int(0, 255),
    "u16": _int(0, 2**16 - 1),
    "u32": _int(0, 2**32 - 1),
    "u64": _int(0, 2**64 - 1),
    "u128": _int(0, Num("3.402823669209385e+38")),
    "u256": _int(0, Num("1.157920892373162e+77")),
    "f32": {"type": "number", "x-sql-datatype": "real"},
    "f64": {"type": "number", "x-sql-datatype": "double precision"},
    "bf16": {"type": "number", "x-sql-datatype": "real"},
    "d76": {"type": "string", "format": "singer.decimal", "precision": 76, "scale": 38},
    "d9": {"type": "string", "format": "singer.decimal", "precision": 9, "scale": 2},
    "d32": {"type": "string", "format": "singer.decimal", "precision": 9, "scale": 3},
    "b": {"type": "boolean"},
    "s": {"type": "string"},
    "fs": {"type": "string", "maxLength": 4},
    "e8": {"type": "string", "enum": ["a", "b c", "it's"]},
    "lc": {"type": "string"},
    "uuid": {"type": "string", "format": "uuid"},
    "d": {"type": "string", "format": "date"},
    "d32x": {"type": "string", "format": "date"},
    "dt": {"type": "string", "format": "date-time"},
    "dt64": {"type": "string", "format": "date-time"},
    "dt3": {"type": "string", "format": "date-time"},
    "t": {"type": "string"},
    "ip4": {"type": "string", "format": "ipv4"},
    "ip6": {"type": "string", "format": "ipv6"},
    "arr": {"type": "array", "items": INT32},
    "arrn": {"type": "array", "items": {"type": ["string", "null"]}},
    "arr2": {"type": "array", "items": {"type": "array", "items": _int(0, 2**64 - 1)}},
    "m": {
        "type": "object",
        "additionalProperties": {"type": "string", "format": "singer.decimal", "precision": 10, "scale": 2},
    },
    "mi": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    "tn": {"type": "object", "properties": {"a": INT32, "b c": {"type": "string"}}},
    "tu": {"type": "array", "items": {"anyOf": [INT32, {"type": "string"}]}},
    "j": {"type": "object"},
    "nst.x": {"type": "array", "items": INT32},
    "nst.y": {"type": "array", "items": {"type": "string"}},
    "ni": {"type": ["integer", "null"], "minimum": -(2**31), "maximum": 2**31 - 1},
    "ns": {"type": ["string", "null"]},
    "lcn": {"type": ["string", "null"]},
    "nf": {"type": ["number", "null"], "x-sql-datatype": "double precision"},
    "pt": {"type": "array", "items": {"type": "number", "x-sql-datatype": "double precision"}},
    "dyn": ANY_JSON,
    "var": ANY_JSON,
}
EVERY_TYPE_VALUES: list[dict[str, Any]] = [
    {
        "id": 1,
        "i8": 127,
        "i16": 32767,
        "i32": 2147483647,
        "i64": 2**63 - 1,
        "i128": 2**127 - 1,
        "i256": 2**255 - 1,
        "u8": 255,
        "u16": 65535,
        "u32": 2**32 - 1,
        "u64": 2**64 - 1,
        "u128": 2**128 - 1,
        "u256": 2**256 - 1,
        "f32": "NaN",
        "f64": "Infinity",
        "bf16": Num("1.5"),
        "d76": "99999999999999999999999999999999999999.99999999999999999999999999999999999999",
        "d9": "1.50",
        "d32": "0.001",
        "b": True,
        "s": "é ☃ \t\n\r\x1f\x00 \"q\" \\ 's' / \u2028 end",
        "fs": "ab\x00\x00",
        "e8": "b c",
        "lc": "low",
        "uuid": "61f0c404-5cb3-11e7-907b-a6006ad3dba0",
        "d": "2149-06-06",
        "d32x": "2299-12-31",
        "dt": "2024-06-01T00:00:00+00:00",  # 09:00 in Tokyo
        "dt64": "2262-04-11T23:47:16.854775807+00:00",
        "dt3": "2024-01-01T00:00:00.123+00:00",
        "t": "-12:34:56",
        "ip4": "1.2.3.4",
        "ip6": "2001:db8::1",
        "arr": [],
        "arrn": ["x", None],
        "arr2": [[1], [], [2**64 - 1]],
        "m": {"k": "1.50", 'q"': "-0.01"},
        "mi": {"1": ["a"], "2": []},
        "tn": {"a": 1, "b c": "x"},
        "tu": [2, "y"],
        "j": {"a": {"b": 2**64 - 1, "c": [Num("1.5"), "s"]}},
        "nst.x": [1, 2],
        "nst.y": ["p", "q"],
        "ni": None,
        "ns": None,
        "lcn": None,
        "nf": None,
        "pt": [Num("1.5"), -2],
        "dyn": 42,
        "var": "v",
    },
    {
        "id": 2,
        "i8": -128,
        "i16": -32768,
        "i32": -(2**31),
        "i64": -(2**63),
        "i128": -(2**127),
        "i256": -(2**255),
        "u8": 0,
        "u16": 0,
        "u32": 0,
        "u64": 0,
        "u128": 0,
        "u256": 0,
        "f32": "-Infinity",
        "f64": Num("-0.0"),  # not 0: a reader keeps the float's sign
        "bf16": Num("0.099609375"),  # 0.1 as a bfloat16 holds it
        "d76": "-99999999999999999999999999999999999999.99999999999999999999999999999999999999",
        "d9": "-0.50",
        "d32": "0.000",
        "b": False,
        "s": "",
        "fs": "\x00\x00\x00\x00",
        "e8": "a",
        "lc": "",
        "uuid": "00000000-0000-0000-0000-000000000000",
        "d": "1970-01-01",
        "d32x": "1900-01-01",
        "dt": "1970-01-01T00:00:00+00:00",
        "dt64": "1900-01-01T00:00:00.000000001+00:00",
        "dt3": "1969-12-31T23:59:59.999+00:00",
        "t": "00:00:00",
        "ip4": "0.0.0.0",
        "ip6": "::",
        "arr": [],
        "arrn": [],
        "arr2": [],
        "m": {},
        "mi": {},
        "tn": {"a": 0, "b c": ""},
        "tu": [0, ""],
        "j": {},
        "nst.x": [],
        "nst.y": [],
        "ni": -7,
        "ns": "n",
        "lcn": "lc",
        "nf": Num("1e300"),
        "pt": [0, 0],
        "dyn": None,
        "var": None,
    },
]


def create_every_type(src: Source) -> None:
    src.sql(EVERY_TYPE_DDL.format(db=src.database), EVERY_TYPE_ROWS.format(db=src.database))


def test_every_type_is_discovered_with_its_schema_key_and_replication_keys(clickhouse: Source) -> None:
    create_every_type(clickhouse)
    entry = clickhouse.entry(clickhouse.discover(), "every_type")
    assert entry["schema"]["properties"] == EVERY_TYPE_SCHEMA
    assert list(entry["schema"]["properties"]) == list(EVERY_TYPE_SCHEMA)  # the table's column order
    assert entry["key_properties"] == ["id"]
    root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
    assert root["table-key-properties"] == ["id"]
    assert root["schema-name"] == clickhouse.database and root["table-name"] == "every_type"
    assert root["is-view"] is False and root["row-count"] == 2
    assert root["valid-replication-keys"] == [
        *("id", "i8", "i16", "i32", "i64", "i128", "i256", "u8", "u16", "u32", "u64", "u128", "u256"),
        *("f32", "f64", "bf16", "d76", "d9", "d32", "d", "d32x", "dt", "dt64", "dt3", "ni", "nf"),
    ]


@pytest.mark.certifies("types", connector="tap-clickhouse")
def test_every_type_value_arrives_exactly_in_the_record_json(clickhouse: Source) -> None:
    create_every_type(clickhouse)
    run = ok(clickhouse.sync())
    assert records(run) == EVERY_TYPE_VALUES
    assert "JSON null" not in run.stderr


def test_records_are_the_servers_bytes_framed_as_they_came(clickhouse: Source) -> None:
    """Exactly one line per record, valid UTF-8, with no Python re-encoding of values (key order kept)."""
    create_every_type(clickhouse)
    run = ok(clickhouse.sync())
    lines = [line for line in run.stdout.splitlines() if line.startswith(b'{"type":"RECORD"')]
    assert len(lines) == 2
    assert b'"f64":-0.0,' in lines[1] and b'"nf":1e300,' in lines[1]
    assert b'"i256":57896044618658097711785492504343953926634992332820282019728792003956564819967,' in lines[0]
    assert b'"s":"\\u00e9' not in lines[0]  # text stays UTF-8, control characters escaped
    assert "\\u2028" in lines[0].decode() and "\\u001F" in lines[0].decode()


# -- discovery ---------------------------------------------------------------------------------------


def test_discovery_keys_views_and_filters(clickhouse: Source) -> None:
    db = clickhouse.database
    other = f"{db}_other"
    clickhouse.sql(
        f"CREATE TABLE {db}.replacing (a String, b DateTime64(3, 'UTC'), v UInt64) "
        "ENGINE = ReplacingMergeTree(v) ORDER BY (a, b)",
        f"CREATE TABLE {db}.by_expression (ts DateTime, user UInt64) ENGINE = MergeTree ORDER BY (toDate(ts), user)",
        f"CREATE TABLE {db}.unordered (x Int32) ENGINE = MergeTree ORDER BY tuple()",
        f"CREATE TABLE {db}.logged (x Int32) ENGINE = Log",
        f"CREATE TABLE {db}.`odd name` (`the key` Int32, `a.b` String) ENGINE = MergeTree ORDER BY `the key`",
        f"CREATE VIEW {db}.recent AS SELECT a, v FROM {db}.replacing WHERE v > 1",
        f"CREATE MATERIALIZED VIEW {db}.totals ENGINE = SummingMergeTree ORDER BY a AS "
        f"SELECT a, sum(v) AS v FROM {db}.replacing GROUP BY a",
        f"CREATE DATABASE {other}",
        f"CREATE TABLE {other}.elsewhere (id Int32) ENGINE = MergeTree ORDER BY id",
    )
    try:
        catalog = clickhouse.discover()
        ids = [e["tap_stream_id"] for e in catalog["streams"]]
        # The configured database only; no hidden .inner table of the materialized view.
        assert ids == [
            f"{db}-by_expression",
            f"{db}-logged",
            f"{db}-odd name",
            f"{db}-recent",
            f"{db}-replacing",
            f"{db}-totals",
            f"{db}-unordered",
        ]
        keys = {e["tap_stream_id"].split("-", 1)[1]: e["key_properties"] for e in catalog["streams"]}
        assert keys == {
            "replacing": ["a", "b"],
            "by_expression": [],  # toDate(ts) is no column
            "unordered": [],
            "logged": [],
            "odd name": ["the key"],
            "recent": [],
            "totals": [],
        }
        roots = {
            e["tap_stream_id"].split("-", 1)[1]: next(m["metadata"] for m in e["metadata"] if m["breadcrumb"] == [])
            for e in catalog["streams"]
        }
        assert roots["recent"]["is-view"] is True and "row-count" not in roots["recent"]
        assert roots["totals"]["is-view"] is True
        assert roots["replacing"]["valid-replication-keys"] == ["b", "v"]

        both = clickhouse.discover(include=[f"{db}.rep*", f"{other}.*"], exclude=["*.recent"])
        assert [e["tap_stream_id"] for e in both["streams"]] == [f"{db}-replacing", f"{other}-elsewhere"]
    finally:
        clickhouse.sql(f"DROP DATABASE IF EXISTS {other}")


def test_a_view_and_a_table_without_key_are_read_whole(clickhouse: Source) -> None:
    db = clickhouse.database
    clickhouse.sql(
        f"CREATE TABLE {db}.logged (x Int32, s String) ENGINE = Log",
        f"INSERT INTO {db}.logged VALUES (1, 'a'), (2, 'b')",
        f"CREATE VIEW {db}.doubled AS SELECT x * 2 AS x2 FROM {db}.logged",
    )
    run = ok(clickhouse.sync(clickhouse.catalog("doubled"), state_every_rows=1))
    assert sorted(r["x2"] for r in records(run)) == [2, 4]
    assert all("last_pk" not in s["bookmarks"].get(clickhouse.stream("doubled"), {}) for s in run.states)


# -- bookmarks of exact types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "first", "later"),
    [
        ("big", "57896044618658097711785492504343953926634992332820282019728792003956564819965", "5e76"),
        ("u", 18446744073709551613, 2**64 - 1),
        ("dec", "12345678901234.5678", "12345678901234.5679"),
        ("ts", "2024-01-01T00:00:00.000000002+00:00", "2024-01-01T00:00:00.000000003+00:00"),
        ("day", "2299-12-29", "2299-12-31"),
    ],
)
def test_incremental_bookmarks_keep_every_digit(clickhouse: Source, key: str, first: Any, later: Any) -> None:
    db = clickhouse.database
    clickhouse.sql(
        f"CREATE TABLE {db}.events (id UInt32, big Int256, u UInt64, dec Decimal(18, 4), "
        "ts DateTime64(9, 'UTC'), day Date32) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {db}.events SELECT number, "
        "toInt256('57896044618658097711785492504343953926634992332820282019728792003956564819963') + number, "
        "18446744073709551611 + number, toDecimal64('12345678901234.5676', 4) + toDecimal64(number / 10000, 4), "
        "toDateTime64('2024-01-01 00:00:00', 9, 'UTC') + toIntervalNanosecond(number), "
        "toDate32('2299-12-27') + number FROM numbers(3)",
    )
    catalog = clickhouse.catalog("events", "INCREMENTAL", key)
    run = ok(clickhouse.sync(catalog))
    assert [r["id"] for r in records(run)] == [0, 1, 2]
    bookmark = run.states[-1]["bookmarks"][clickhouse.stream("events")]
    assert bookmark == {"replication_key": key, "replication_key_value": first}
    # One more row past the bookmark (the wide integers as strings: JSON numbers that wide come back rounded).
    clickhouse.sql(
        f"INSERT INTO {db}.events SELECT 9, "
        "toInt256('57896044618658097711785492504343953926634992332820282019728792003956564819967'), "
        "18446744073709551615, toDecimal64('12345678901234.5679', 4), "
        "toDateTime64('2024-01-01 00:00:00.000000003', 9, 'UTC'), toDate32('2299-12-31')"
    )
    again = ok(clickhouse.sync(catalog, run.states[-1]))
    assert [r["id"] for r in records(again)] == [2, 9]  # the row at the bookmark again, then the new one
    value = again.states[-1]["bookmarks"][clickhouse.stream("events")]["replication_key_value"]
    expected = {"big": str(2**255 - 1), "u": later}.get(key, later)
    assert value == expected


def test_a_resumed_full_table_resends_every_row_at_a_repeated_key(clickhouse: Source) -> None:
    """ClickHouse keys need not be unique: rows sharing the last key sent come again, none is lost."""
    db = clickhouse.database
    clickhouse.sql(
        f"CREATE TABLE {db}.events (k UInt32, n UInt32) ENGINE = MergeTree ORDER BY k",
        f"INSERT INTO {db}.events VALUES (1, 1), (2, 2), (2, 3), (2, 4), (3, 5), (4, 6)",
    )
    catalog = clickhouse.catalog("events")
    first = ok(clickhouse.sync(catalog))
    version = first.states[-1]["bookmarks"][clickhouse.stream("events")]["version"]
    stream = clickhouse.stream("events")
    repeated = ok(clickhouse.sync(catalog, {"bookmarks": {stream: {"version": version, "last_pk": [2]}}}))
    assert sorted(r["n"] for r in records(repeated)) == [2, 3, 4, 5, 6]
    unique = ok(clickhouse.sync(catalog, {"bookmarks": {stream: {"version": version, "last_pk": [3]}}}))
    assert [r["n"] for r in records(unique)] == [6]
    assert {m["version"] for m in unique.of_type("RECORD")} == {version}


def test_a_full_table_resumes_after_a_composite_text_key(clickhouse: Source) -> None:
    db = clickhouse.database
    odd = 'it\'s a \\ "key" {x:String} é'
    clickhouse.sql(f"CREATE TABLE {db}.pairs (s String, n Int32, v String) ENGINE = MergeTree ORDER BY (s, n)")
    clickhouse.insert("pairs", ("s", "n", "v"), [(odd, 1, "a"), (odd, 2, "b"), ("z", 1, "c"), ("a", 5, "d")])
    catalog = clickhouse.catalog("pairs")
    run = ok(clickhouse.sync(catalog, state_every_rows=2))
    assert [r["v"] for r in records(run)] == ["d", "a", "b", "c"]
    checkpoint = run.states[0]["bookmarks"][clickhouse.stream("pairs")]
    assert checkpoint["last_pk"] == [odd, 1]
    resumed = ok(clickhouse.sync(catalog, {"bookmarks": {clickhouse.stream("pairs"): checkpoint}}))
    assert [r["v"] for r in records(resumed)] == ["b", "c"]


# -- errors ------------------------------------------------------------------------------------------


def test_an_unknown_database_is_a_config_error(clickhouse: Source) -> None:
    line = error_line(clickhouse.run("--discover", config=clickhouse.config(database="nope")), "config", EXIT_CONFIG)
    assert "database 'nope' does not exist on the server" in line
    assert clickhouse.database in line and "system" not in line


def test_text_that_is_not_utf8_stops_the_read_naming_the_column_or_is_replaced(clickhouse: Source) -> None:
    db = clickhouse.database
    clickhouse.sql(
        f"CREATE TABLE {db}.blobs (id Int32, raw String) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {db}.blobs VALUES (1, 'fine'), (2, 'bad \\xff byte')",
    )
    failed = clickhouse.sync(clickhouse.catalog("blobs"))
    line = error_line(failed, "data", EXIT_DATA)
    assert f"reading {db}.blobs: column 'raw' holds bytes that are not UTF-8 text" in line
    replaced = ok(clickhouse.sync(clickhouse.catalog("blobs"), invalid_utf8="replace"))
    assert [r["raw"] for r in records(replaced)] == ["fine", "bad \ufffd byte"]


def test_a_readonly_user_reads_plain_tables_and_is_told_what_json_columns_need(clickhouse: Source) -> None:
    db = clickhouse.database
    clickhouse.sql(
        f"CREATE TABLE {db}.plain (id Int32, s String) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {db}.plain VALUES (1, 'a/b')",
        f"CREATE TABLE {db}.docs (id Int32, doc JSON) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {db}.docs VALUES (1, '{{\"n\": 18446744073709551615}}')",
    )
    readonly = {"readonly": 1}
    plain = ok(clickhouse.sync(clickhouse.catalog("plain"), clickhouse_settings=readonly))
    assert records(plain) == [{"id": 1, "s": "a/b"}]
    docs = clickhouse.sync(clickhouse.catalog("docs"), clickhouse_settings=readonly)
    line = error_line(docs, "config", EXIT_CONFIG)
    assert f"reading {db}.docs: Cannot modify 'output_format_json_" in line
    assert line.endswith(
        "setting in readonly mode. (tables with JSON, Dynamic or Variant columns are read with "
        "output format settings: the user needs readonly=2 or 0)"
    )
    assert "in query" not in line


@pytest.mark.parametrize(
    "config",
    [
        {"host": "127.0.0.1", "port": 1, "username": "etl", "password": "pw-Secret-4711"},
        {"dsn": "http://etl:pw-Secret-4711@127.0.0.1:1/app"},
    ],
    ids=["fields", "dsn"],
)
def test_a_refused_connection_is_transient_and_never_shows_the_password(
    clickhouse: Source, config: dict[str, Any]
) -> None:
    run = clickhouse.run("--discover", config=config)
    line = error_line(run, "transient", EXIT_TRANSIENT)
    assert line.startswith("tap-clickhouse: transient error: connecting to ClickHouse: ")
    assert "Connection refused" in line
    assert "pw-Secret-4711" not in run.stderr


def test_as_a_process_a_refused_connection_exits_75_without_the_password(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dsn": "https://etl:pw-Secret-4711@127.0.0.1:1/app"}))
    proc = subprocess.run(
        [*process_command(CLI), "--config", str(config), "--discover"],
        capture_output=True,
        text=True,
        env=process_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_TRANSIENT, proc.stderr
    assert "pw-Secret-4711" not in proc.stderr and "Traceback" not in proc.stderr


def test_the_server_error_text_inside_a_result_is_raised_as_its_message() -> None:
    """Over HTTP a server that fails mid-answer appends its error to the rows it already sent."""
    body = b'{"a":1}\t[1]\n{"a":2}\t[2]\nCode: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)\n'
    reader = ChunkReader(io.BytesIO(body))
    rows = tsv_lines(reader.chunks())
    with pytest.raises(ServerError, match="Code: 241"):
        list(rows)
    reader.close()


def test_a_result_cut_inside_a_row_is_a_lost_connection() -> None:
    reader = ChunkReader(io.BytesIO(b'{"a":1}\t[1]\n{"a":'))
    with pytest.raises(ConnectionLost, match="ended inside a row"):
        list(tsv_lines(reader.chunks()))
    reader.close()


def test_rows_spanning_chunks_and_escapes_come_out_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from dpone.taps.clickhouse import reader as reader_module

    monkeypatch.setattr(reader_module, "CHUNK", 7)
    body = b'{"s":"a\\\\\\"b\\\'"}\t[1]\n{"s":"x"}\t["k\\\\"]\n'
    reader = ChunkReader(io.BytesIO(body))
    assert list(tsv_lines(reader.chunks())) == [b'{"s":"a\\"b\'"}\x1f[1]', b'{"s":"x"}\x1f["k\\"]']
    reader.close()


# -- as a process --------------------------------------------------------------------------------------


def test_the_tap_as_a_process_piped_into_target_jsonl(clickhouse: Source, tmp_path: Path) -> None:
    db = clickhouse.database
    clickhouse.sql(
        f"CREATE TABLE {db}.orders (id UInt64, total Decimal(12, 2), at DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {db}.orders VALUES (1, 10.50, '2025-01-01 10:00:00.001'), (2, 0, '2025-01-02 09:00:00')",
    )
    tap_config = tmp_path / "ch.json"
    tap_config.write_text(json.dumps(clickhouse.config()))
    target_config = tmp_path / "jsonl.json"
    target_config.write_text(json.dumps({"destination_path": str(tmp_path / "out")}))
    target = [*process_command("dpone.targets.jsonl.cli"), "--config", str(target_config)]
    with clickhouse.released():
        discovered = subprocess.run(
            [*process_command(CLI), "--config", str(tap_config), "--discover"],
            capture_output=True,
            env=process_env(),
            timeout=120,
            check=True,
        )
        tap = subprocess.Popen(
            [*process_command(CLI), "--config", str(tap_config)], stdout=subprocess.PIPE, env=process_env()
        )
        loaded = subprocess.run(target, stdin=tap.stdout, capture_output=True, env=process_env(), timeout=120)
        assert tap.wait(timeout=120) == 0
    assert json.loads(discovered.stdout)["streams"][0]["tap_stream_id"] == f"{db}-orders"
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout.splitlines()[-1])["bookmarks"][f"{db}-orders"]["version"]
    rows = [json.loads(line) for line in (tmp_path / "out" / f"{db}-orders.jsonl").read_text().splitlines()]
    assert rows == [
        {"id": 1, "total": "10.50", "at": "2025-01-01T10:00:00.001+00:00"},
        {"id": 2, "total": "0.00", "at": "2025-01-02T09:00:00.000+00:00"},
    ]


# -- documentation -------------------------------------------------------------------------------------


def test_doc_settings_table_lists_every_setting() -> None:
    text = DOC.read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    names = [s.name for s in ClickHouseTap.all_settings()]
    assert [n for n in table if n in names] == names, "docs/connectors/tap-clickhouse.md settings table is out of date"


def test_a_target_clickhouse_table_reads_as_its_readers_see_it(clickhouse: Source) -> None:
    """What target-clickhouse writes: ORDER BY (id) is a key; a ReplacingMergeTree is read with FINAL
    (newest version per key, deleted keys gone), without its version columns; staging and shadow
    tables are not streams."""
    db = clickhouse.database
    clickhouse.sql(
        f"CREATE TABLE {db}.users (id Int64, name String, _dpone_version UInt64, _dpone_is_deleted UInt8) "
        "ENGINE = ReplacingMergeTree(_dpone_version, _dpone_is_deleted) ORDER BY (id)",
        f"INSERT INTO {db}.users VALUES (1, 'Ana', 1, 0), (2, 'Ben', 1, 0)",
        f"INSERT INTO {db}.users VALUES (1, 'Ana v2', 2, 0), (2, 'Ben', 2, 1)",
        f"CREATE TABLE {db}._dpone_stage_users_1_0 (id Int64) ENGINE = Memory",
        f"CREATE TABLE {db}.users__dpone_new (id Int64) ENGINE = MergeTree ORDER BY id",
    )
    catalog = clickhouse.discover()
    assert [e["tap_stream_id"] for e in catalog["streams"]] == [f"{db}-users"]
    (entry,) = catalog["streams"]
    assert entry["key_properties"] == ["id"]
    assert set(entry["schema"]["properties"]) == {"id", "name"}
    run = ok(clickhouse.sync(catalog))
    assert [(r["id"], r["name"]) for r in records(run)] == [(1, "Ana v2")]
