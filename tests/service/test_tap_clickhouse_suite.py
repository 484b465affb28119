"""tap-clickhouse runs the shared tap suite (tests/kit/tap_suite.py) on the embedded ClickHouse engine:
two MergeTree tables ordered by `id` in a database of their own per test (tests/service/clickhouse_source.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.clickhouse.tap import ClickHouseTap
from tests.kit.kit import TapKit
from tests.kit.tap_suite import TapSuite
from tests.service.clickhouse_source import Source, clickhouse_fixture  # noqa: F401 - provides `clickhouse`

pytestmark = pytest.mark.service


class TestTapClickHouse(TapSuite):
    @pytest.fixture
    def tap_kit(self, clickhouse: Source, tmp_path: Path) -> TapKit:
        tables = ("items", "others")
        for name in tables:
            clickhouse.sql(
                f"CREATE TABLE {clickhouse.database}.{name} (id Int64, name String, updated_at DateTime('UTC')) "
                "ENGINE = MergeTree ORDER BY id"
            )

        def put_rows(stream: str, rows: list[dict[str, Any]]) -> None:
            table = stream.removeprefix(f"{clickhouse.database}-")
            values = [(r["id"], r["name"], dt.datetime.fromisoformat(r["updated_at"])) for r in rows]
            clickhouse.insert(table, ("id", "name", "updated_at"), values)

        return TapKit(
            tap=ClickHouseTap,
            config=clickhouse.config(),
            streams=(clickhouse.stream(tables[0]), clickhouse.stream(tables[1])),
            put_rows=put_rows,
            workdir=tmp_path,
            resumes_full_table=True,
        )
