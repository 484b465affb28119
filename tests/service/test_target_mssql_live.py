"""target-mssql runs the shared target suite against a real SQL Server when DPONE_TEST_MSSQL_DSN is set
(no server runs on the development machines: tests/unit/test_target_mssql_runs.py covers the wire)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dpone.targets.mssql.target import MssqlTarget
from tests.kit.kit import TargetKit
from tests.kit.target_suite import TargetSuite
from tests.tools.mssql_live import LiveSchema, live_schema, needs_server

pytestmark = [pytest.mark.service, needs_server]


@pytest.fixture
def mssql() -> Iterator[LiveSchema]:
    yield from live_schema()


class TestTargetMssqlLive(TargetSuite):
    @pytest.fixture
    def target_kit(self, mssql: LiveSchema, tmp_path: Path) -> TargetKit:
        return TargetKit(
            target=MssqlTarget,
            config=mssql.config(),
            read_table=mssql.rows,
            tables=mssql.tables,
            workdir=tmp_path,
        )
