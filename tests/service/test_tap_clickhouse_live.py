"""tap-clickhouse against a real server you give it: DPONE_TEST_CLICKHOUSE_DSN (an http(s):// or
clickhouse:// URL whose user may create and drop databases). Each test works in a fresh database and
drops it. Only types every supported server version has are used.

    export DPONE_TEST_CLICKHOUSE_DSN=http://default:pw@localhost:8123/default
    pytest tests/service/test_tap_clickhouse_live.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.service.clickhouse_source import EXIT_CONFIG, Num, Source, error_line, ok, records

DSN = os.environ.get("DPONE_TEST_CLICKHOUSE_DSN", "")

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not DSN, reason="DPONE_TEST_CLICKHOUSE_DSN is not set: no live ClickHouse server to read"),
]

BASIC_DDL = """
CREATE TABLE {db}.basic (
  id UInt64, i256 Int256, u64 UInt64, f64 Float64, f32 Nullable(Float32), d Decimal(38, 10),
  s String, lc LowCardinality(Nullable(String)), e Enum8('x' = 1, 'y' = 2), u UUID,
  day Date32, ts DateTime('Europe/Berlin'), ts9 DateTime64(9, 'UTC'),
  arr Array(Nullable(Int32)), m Map(String, UInt8), t Tuple(a String, b Float64)
) ENGINE = MergeTree ORDER BY id
"""
BASIC_ROWS = r"""
INSERT INTO {db}.basic VALUES
 (1, -57896044618658097711785492504343953926634992332820282019728792003956564819968, 18446744073709551615,
  -0., nan, '-1234567890123456789012345678.0123456789', 'tab\there \\ "q" é', NULL, 'y',
  '61f0c404-5cb3-11e7-907b-a6006ad3dba0', '1900-01-01', '2024-06-01 12:00:00', '2024-01-01 00:00:00.000000001',
  [1, NULL], {{'k': 7}}, ('a', 0.5)),
 (2, 0, 0, 1e-7, inf, '0.5', '', 'lc', 'x',
  '00000000-0000-0000-0000-000000000000', '2299-12-31', '1970-01-01 01:00:00', '2262-04-11 23:47:16.854775807',
  [], {{}}, ('', -1))
"""
BASIC_VALUES = [
    {
        "id": 1,
        "i256": -(2**255),
        "u64": 2**64 - 1,
        "f64": Num("-0.0"),
        "f32": "NaN",
        "d": "-1234567890123456789012345678.0123456789",
        "s": 'tab\there \\ "q" é',
        "lc": None,
        "e": "y",
        "u": "61f0c404-5cb3-11e7-907b-a6006ad3dba0",
        "day": "1900-01-01",
        "ts": "2024-06-01T10:00:00+00:00",
        "ts9": "2024-01-01T00:00:00.000000001+00:00",
        "arr": [1, None],
        "m": {"k": 7},
        "t": {"a": "a", "b": Num("0.5")},
    },
    {
        "id": 2,
        "i256": 0,
        "u64": 0,
        "f64": Num("1e-7"),
        "f32": "Infinity",
        "d": "0.5000000000",
        "s": "",
        "lc": "lc",
        "e": "x",
        "u": "00000000-0000-0000-0000-000000000000",
        "day": "2299-12-31",
        "ts": "1970-01-01T00:00:00+00:00",
        "ts9": "2262-04-11T23:47:16.854775807+00:00",
        "arr": [],
        "m": {},
        "t": {"a": "", "b": -1},
    },
]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Source]:
    source = Source({"dsn": DSN}, tmp_path)
    try:
        yield source
    finally:
        source.close()


def test_live_discovery_and_full_table_values(live: Source) -> None:
    live.sql(BASIC_DDL.format(db=live.database), BASIC_ROWS.format(db=live.database))
    entry = live.entry(live.discover(), "basic")
    assert entry["key_properties"] == ["id"]
    assert entry["schema"]["properties"]["d"] == {
        "type": "string",
        "format": "singer.decimal",
        "precision": 38,
        "scale": 10,
    }
    run = ok(live.sync())
    assert records(run) == BASIC_VALUES
    kinds = [m["type"] for m in run.messages]
    assert kinds == ["SCHEMA", "ACTIVATE_VERSION", "RECORD", "RECORD", "ACTIVATE_VERSION", "STATE"]


def test_live_incremental_and_resume(live: Source) -> None:
    db = live.database
    live.sql(
        f"CREATE TABLE {db}.events (id UInt32, at DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {db}.events SELECT number, toDateTime64('2024-01-01 00:00:00', 6, 'UTC') + "
        "toIntervalHour(number) FROM numbers(5)",
    )
    catalog = live.catalog("events", "INCREMENTAL", "at")
    first = ok(live.sync(catalog))
    assert [r["id"] for r in records(first)] == [0, 1, 2, 3, 4]
    live.sql(f"INSERT INTO {db}.events VALUES (9, '2024-02-01 00:00:00')")
    second = ok(live.sync(catalog, first.states[-1]))
    assert [r["id"] for r in records(second)] == [4, 9]
    full = live.catalog("events")
    resumed = ok(live.sync(full, {"bookmarks": {live.stream("events"): {"version": 1, "last_pk": [3]}}}))
    assert [r["id"] for r in records(resumed)] == [4, 9]


def test_live_unknown_database_and_wrong_password(live: Source) -> None:
    line = error_line(live.run("--discover", config=live.config(database="nope_" + live.database)), "config", 78)
    assert "does not exist on the server" in line
    parts = urlsplit(DSN)
    if parts.scheme.startswith("chdb"):
        return
    wrong = parts._replace(netloc=f"{parts.username or 'default'}:Wrong-Pw-0042@{parts.hostname}:{parts.port or 8123}")
    config: dict[str, Any] = {"dsn": urlunsplit(wrong), "database": live.database}
    run = live.run("--discover", config=config)
    assert "Wrong-Pw-0042" not in run.stderr
    assert run.rc == EXIT_CONFIG, run.stderr
