"""target-bigquery runs the shared target suite (tests/kit/target_suite.py) on the BigQuery emulator,
a dataset per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpone.targets.bigquery.target import BigQueryTarget
from tests.kit.kit import TargetKit
from tests.kit.target_suite import TargetSuite
from tests.service.bigquery_dest import BigQueryDest

pytestmark = pytest.mark.service


class TestTargetBigQuery(TargetSuite):
    @pytest.fixture
    def target_kit(self, tmp_path: Path, bigquery_emulator: Any) -> TargetKit:
        dest = BigQueryDest(bigquery_emulator)
        return TargetKit(
            target=BigQueryTarget,
            config=dest.config(),
            read_table=dest.rows,
            tables=dest.tables,
            workdir=tmp_path,
        )
