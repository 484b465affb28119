"""tap-bigquery runs the shared tap suite (tests/kit/tap_suite.py) on the BigQuery emulator: two
tables in a dataset of their own per test, read as configured streams keyed by `id` (the emulator
keeps no PRIMARY KEY constraint, so the key comes from the `streams` setting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpone.taps.bigquery.tap import BigQueryTap
from tests.kit.kit import TapKit
from tests.kit.tap_suite import TapSuite
from tests.service.bigquery_source import Source, bigquery_fixture  # noqa: F401 - provides `bigquery`

pytestmark = pytest.mark.service


class TestTapBigQuery(TapSuite):
    @pytest.fixture
    def tap_kit(self, bigquery: Source, tmp_path: Path) -> TapKit:
        from google.cloud.bigquery import SchemaField

        fields = [
            SchemaField("id", "INT64", mode="REQUIRED"),
            SchemaField("name", "STRING"),
            SchemaField("updated_at", "TIMESTAMP"),
        ]
        names = ("items", "others")
        for name in names:
            bigquery.create(name, fields)

        def put_rows(stream: str, rows: list[dict[str, Any]]) -> None:
            bigquery.load(stream, rows)

        streams = [{"name": name, "table": name, "key_properties": ["id"]} for name in names]
        return TapKit(
            tap=BigQueryTap,
            config=bigquery.config(streams=streams),
            streams=names,
            put_rows=put_rows,
            workdir=tmp_path,
        )
