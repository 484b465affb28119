"""target-clickhouse against a real ClickHouse server over HTTP, when DPONE_TEST_CLICKHOUSE_DSN is set
(e.g. clickhouse://default:pw@localhost:8123/default): the same INSERT path with input() instead of
file(), in a database of its own that is dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpone.targets.clickhouse.target import ClickHouseTarget
from tests.conftest import lines, record, schema, state
from tests.kit.kit import TargetKit

DSN = os.environ.get("DPONE_TEST_CLICKHOUSE_DSN", "")
pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not DSN, reason="set DPONE_TEST_CLICKHOUSE_DSN to run against a real ClickHouse server"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[TargetKit, Any, str]]:
    import clickhouse_connect

    database = f"dpone_test_{uuid.uuid4().hex[:8]}"
    client = clickhouse_connect.get_client(dsn=DSN)

    def rows(table: str) -> list[dict[str, Any]] | None:
        result = client.query(f"SELECT * EXCEPT (_dpone_version, _dpone_is_deleted) FROM `{database}`.`{table}` FINAL")
        return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]

    def tables() -> set[str]:
        found = client.query(f"SELECT name FROM system.tables WHERE database = '{database}'").result_rows
        return {name for (name,) in found}

    kit = TargetKit(ClickHouseTarget, {"dsn": DSN, "database": database}, rows, tables, tmp_path)
    try:
        yield kit, client, database
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.close()


def test_upsert_types_and_errors_on_a_server(server: tuple[TargetKit, Any, str]) -> None:
    kit, _, _ = server
    props = {
        "id": {"type": "integer"},
        "amount": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1000},
        "at": {"type": ["null", "string"], "format": "date-time"},
    }
    data = lines(
        schema("s", props),
        record("s", {"id": 1, "amount": 1.5, "at": "2024-01-01T00:00:00Z"}),
        record("s", {"id": 1, "amount": 2.25}),
        state({"n": 1}),
    )
    result = kit.run(data)
    assert result.rc == 0, result.stderr
    assert [(r["id"], str(r["amount"])) for r in kit.read_table("s") or []] == [(1, "2.25")]
    bad = lines(schema("s", props)) + b'{"type":"RECORD","stream":"s","record":{"id":2,"amount":1.239}}\n'
    result = kit.run(bad)
    assert result.rc == 65 and "more digits than Decimal(6, 2)" in result.stderr
    overwrite = lines(schema("s", props), record("s", {"id": 9}))
    assert kit.run(overwrite, load_method="overwrite").rc == 0
    assert [r["id"] for r in kit.read_table("s") or []] == [9]
