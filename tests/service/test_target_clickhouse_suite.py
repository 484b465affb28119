"""target-clickhouse runs the shared target suite (tests/kit/target_suite.py) on the embedded ClickHouse
engine, a data directory per test; upsert tables are read with FINAL, as a reader of them must."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpone.targets.clickhouse.target import ClickHouseTarget
from tests.kit.kit import TargetKit
from tests.kit.target_suite import TargetSuite
from tests.service.clickhouse_dest import ClickHouseDest

pytestmark = pytest.mark.service


class TestTargetClickHouse(TargetSuite):
    @pytest.fixture
    def target_kit(self, tmp_path: Path) -> TargetKit:
        dest = ClickHouseDest(tmp_path / "clickhouse")
        return TargetKit(
            target=ClickHouseTarget,
            config=dest.config(),
            read_table=dest.rows,
            tables=dest.tables,
            workdir=tmp_path,
            stdin_file=True,
            lacks={
                "sdk:record_missing_required_property": (
                    "the stream declares 'id' required and never null, so its column is a non-Nullable Int64; a "
                    "record without it stops the load (test_target_clickhouse.py checks the error)"
                ),
            },
        )
