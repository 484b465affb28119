"""tap-clickhouse's row estimates (`--ops estimate`, what `dpone plan` shows) on the embedded engine (chdb):
the stored row count of system.tables for MergeTree and Memory tables, unknown for a view, only for
the selected streams, and the answer's shape.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dpone_protocol.catalog import Catalog
from tests.service.clickhouse_source import Source, clickhouse_fixture, ok  # noqa: F401 - provides `clickhouse`

pytestmark = pytest.mark.service


def estimate(source: Source, catalog: Catalog) -> dict[str, Any]:
    request = source.file("request", {"op": "estimate"})
    run = ok(source.run("--ops", request, "--catalog", source.file("catalog", catalog.to_dict())))
    answer: dict[str, Any] = orjson.loads(run.stdout)
    return answer


def discovered(source: Source, *selected: str) -> Catalog:
    catalog = Catalog.from_dict(orjson.loads(ok(source.run("--discover")).stdout))
    for entry in catalog:
        entry.stream_metadata()["selected"] = entry.tap_stream_id in {source.stream(t) for t in selected}
    return catalog


def test_stored_rows_for_tables_unknown_for_views_only_the_selected_streams(clickhouse: Source):
    db = clickhouse.database
    clickhouse.sql(
        f"CREATE TABLE {db}.events (id UInt64, kind String) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {db}.events SELECT number, 'k' FROM numbers(1234)",
        f"CREATE TABLE {db}.cache (id UInt32) ENGINE = Memory",
        f"INSERT INTO {db}.cache SELECT number FROM numbers(7)",
        f"CREATE TABLE {db}.empty (id UInt32) ENGINE = MergeTree ORDER BY id",
        f"CREATE VIEW {db}.recent AS SELECT * FROM {db}.events WHERE id > 1000",
        f"CREATE TABLE {db}.other (id UInt32) ENGINE = MergeTree ORDER BY id",
    )
    answer = estimate(clickhouse, discovered(clickhouse, "events", "cache", "empty", "recent"))
    assert answer == {
        "op": "estimate",
        "supported": True,
        "rows": {
            clickhouse.stream("cache"): 7,
            clickhouse.stream("empty"): 0,
            clickhouse.stream("events"): 1234,
            clickhouse.stream("recent"): None,
        },
    }


def test_no_selected_stream_asks_nothing(clickhouse: Source):
    clickhouse.sql(f"CREATE TABLE {clickhouse.database}.t (id UInt32) ENGINE = MergeTree ORDER BY id")
    assert estimate(clickhouse, discovered(clickhouse))["rows"] == {}
