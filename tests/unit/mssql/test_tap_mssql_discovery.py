"""tap-mssql discovery: the sys views' rows (scripted) become the catalog: types, keys, row counts, views,
and include/exclude globs. Runs `tap-mssql --config ... --discover` in-process on the recording driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.unit.mssql.scripted_source import EVENTS, LINES, ORDERS, TapRun, scripted


def _root(entry: dict[str, Any]) -> dict[str, Any]:
    return next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])


def test_discovery_builds_the_catalog_from_the_sys_views(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = scripted(monkeypatch)
    catalog = TapRun(tmp_path).discover()
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert list(streams) == [EVENTS, LINES, ORDERS, "sales-big_orders"]

    orders = streams[ORDERS]
    assert orders["key_properties"] == ["id"]
    assert orders["schema"]["properties"] == {
        "id": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
        "customer": {"type": ["string", "null"], "maxLength": 50},
        "total": {"type": ["string", "null"], "format": "singer.decimal", "precision": 12, "scale": 2},
        "updated_at": {"type": "string", "format": "date-time"},
        "rv": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    }
    top = _root(orders)
    assert top["row-count"] == 3 and top["is-view"] is False
    assert (top["schema-name"], top["table-name"]) == ("dbo", "orders")
    assert top["valid-replication-keys"] == ["id", "total", "updated_at", "rv"]

    assert streams[LINES]["key_properties"] == ["order_id", "line_no"]  # in key order
    assert streams[LINES]["schema"]["properties"]["sku"] == {"type": ["string", "null"], "maxLength": 20}
    assert streams[EVENTS]["key_properties"] == []
    assert _root(streams[EVENTS])["row-count"] == 0  # SQL Server counts a heap's rows: 0 is a count
    view = _root(streams["sales-big_orders"])
    assert view["is-view"] is True and "row-count" not in view
    # Only catalog views every user may read: no VIEW DATABASE STATE needed.
    assert all("dm_db_partition_stats" not in sql for sql in recorder.statements())


def test_include_and_exclude_globs_choose_the_tables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scripted(monkeypatch)
    run = TapRun(tmp_path)("--discover", include=["dbo.order*", "sales.*"], exclude=["dbo.order_lines"])
    assert run.rc == 0, run.stderr
    assert [s["tap_stream_id"] for s in orjson.loads(run.stdout)["streams"]] == [ORDERS, "sales-big_orders"]
