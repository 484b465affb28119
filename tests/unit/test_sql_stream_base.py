"""The SQL stream base with a second database: the SQLite tap of docs/writing-a-connector.md
(examples/tap_sqlite/, the standard library's driver).

Its dialect is the whole of it but tap.py and cli.py: discovery into the catalog, FULL_TABLE
resumable by key, INCREMENTAL with ties and the STATE cadence all come from the base.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.state.records import StreamBookmark, TablePosition, read_position
from examples.tap_sqlite.tap import SqliteTap


@pytest.fixture
def db(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE orders (region TEXT, id INTEGER, total REAL, updated INTEGER NOT NULL, PRIMARY KEY (region, id));
        INSERT INTO orders VALUES ('eu', 1, 1.5, 10), ('eu', 2, 2.5, 20), ('us', 1, 3.5, 20), ('us', 2, 4.5, 30);
        CREATE VIEW big AS SELECT * FROM orders WHERE total > 2;
        """
    )
    conn.close()
    return {"path": str(path)}


def catalog(run_tap: Any, tmp_path: Path, config: dict[str, Any], **stream_metadata: Any) -> str:
    found = run_tap(SqliteTap, config, "--discover")
    assert found.rc == 0, found.stderr
    doc = orjson.loads(found.stdout)
    for stream in doc["streams"]:
        top = next(m for m in stream["metadata"] if m["breadcrumb"] == [])
        top["metadata"]["selected"] = stream["tap_stream_id"] == "main-orders"
        top["metadata"].update(stream_metadata)
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def state_file(tmp_path: Path, bookmark: dict[str, Any]) -> str:
    path = tmp_path / "state.json"
    path.write_bytes(orjson.dumps({"bookmarks": {"main-orders": bookmark}}))
    return str(path)


def test_discovery_builds_the_catalog_from_the_dialects_catalog_queries(run_tap, db):
    run = run_tap(SqliteTap, db, "--discover")
    assert run.rc == 0, run.stderr
    streams = {s["tap_stream_id"]: s for s in orjson.loads(run.stdout)["streams"]}
    assert set(streams) == {"main-big", "main-orders"}
    orders = streams["main-orders"]
    assert orders["key_properties"] == ["region", "id"]
    assert orders["schema"]["properties"]["updated"] == {"type": "integer"}
    top = next(m["metadata"] for m in orders["metadata"] if m["breadcrumb"] == [])
    assert top["valid-replication-keys"] == ["id", "total", "updated"]
    assert top["is-view"] is False and "row-count" not in top
    assert next(m["metadata"] for m in streams["main-big"]["metadata"] if m["breadcrumb"] == [])["is-view"] is True
    only = run_tap(SqliteTap, {**db, "exclude": ["main.big"]}, "--discover")
    assert [s["tap_stream_id"] for s in orjson.loads(only.stdout)["streams"]] == ["main-orders"]


def test_full_table_in_key_order_with_versions_and_a_resume_point_at_each_state(run_tap, tmp_path, db):
    run = run_tap(SqliteTap, {**db, "state_every_rows": 2}, "--catalog", catalog(run_tap, tmp_path, db))
    assert run.rc == 0, run.stderr
    rows = [(m["record"]["region"], m["record"]["id"]) for m in run.of_type("RECORD")]
    assert rows == [("eu", 1), ("eu", 2), ("us", 1), ("us", 2)]
    assert run.messages[1]["type"] == "ACTIVATE_VERSION"  # first sync: the version comes before any row
    version = run.messages[1]["version"]
    assert {m["version"] for m in run.of_type("RECORD")} == {version}
    marks = [s["value"]["bookmarks"]["main-orders"] for s in run.of_type("STATE")]
    assert marks[0] == {"version": version, "last_pk": ["eu", 2]}
    assert marks[-1] == {"version": version}  # complete: no resume point


def test_full_table_resumes_after_the_saved_key_in_the_same_version(run_tap, tmp_path, db):
    state = state_file(tmp_path, {"version": 7, "last_pk": ["eu", 2], "other": "kept"})
    run = run_tap(SqliteTap, db, "--catalog", catalog(run_tap, tmp_path, db), "--state", state)
    assert run.rc == 0, run.stderr
    assert [(m["record"]["region"], m["record"]["id"]) for m in run.of_type("RECORD")] == [("us", 1), ("us", 2)]
    assert [m["version"] for m in run.of_type("ACTIVATE_VERSION")] == [7]  # only the closing one
    assert run.of_type("STATE")[-1]["value"]["bookmarks"]["main-orders"] == {"version": 7, "other": "kept"}


def test_incremental_reads_ties_at_the_bookmark_again(run_tap, tmp_path, db):
    path = catalog(run_tap, tmp_path, db, **{"replication-method": "INCREMENTAL", "replication-key": "updated"})
    state = state_file(tmp_path, {"replication_key": "updated", "replication_key_value": 20})
    run = run_tap(SqliteTap, db, "--catalog", path, "--state", state)
    assert run.rc == 0, run.stderr
    assert [m["record"]["updated"] for m in run.of_type("RECORD")] == [20, 20, 30]
    final = run.of_type("STATE")[-1]["value"]["bookmarks"]["main-orders"]
    assert final == {"replication_key": "updated", "replication_key_value": 30}


def test_a_malformed_bookmark_is_a_config_error_naming_the_stream(run_tap, tmp_path, db):
    state = state_file(tmp_path, {"version": 7, "last_pk": "eu"})
    run = run_tap(SqliteTap, db, "--catalog", catalog(run_tap, tmp_path, db), "--state", state)
    assert run.rc == 78
    assert "stream 'main-orders': malformed bookmark in the state: 'last_pk' must be a list" in run.stderr


def test_bookmarks_are_read_as_the_methods_record():
    assert read_position("s", {"version": 1, "last_pk": [3]}, "FULL_TABLE") == TablePosition("s", 1, [3])
    assert read_position("s", None, "INCREMENTAL") == StreamBookmark("s", None, None)
