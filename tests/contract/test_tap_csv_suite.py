"""tap-csv runs the shared tap suite (tests/kit/tap_suite.py) on CSV files in a directory of its own."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.csv.tap import CsvTap
from tests.kit.kit import TapKit
from tests.kit.tap_suite import TapSuite

COLUMNS = ("id", "name", "updated_at")
# Declared: a header-only file gives inference nothing to go on.
SCHEMA = {
    "id": {"type": "integer"},
    "name": {"type": ["string", "null"]},
    "updated_at": {"type": ["string", "null"], "format": "date-time"},
}


class TestTapCsv(TapSuite):
    @pytest.fixture
    def tap_kit(self, tmp_path: Path) -> TapKit:
        data = tmp_path / "data"
        data.mkdir()
        files = itertools.count(1)

        def put_rows(stream: str, rows: list[dict[str, Any]]) -> None:
            # One new file per call: the stream's glob picks it up on the next run.
            with open(data / f"{stream}-{next(files):03d}.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, COLUMNS)
                writer.writeheader()
                writer.writerows(rows)

        streams = ("items", "others")
        for stream in streams:
            # An empty stream is a header: the glob must match a file for the stream to exist.
            (data / f"{stream}-000-empty.csv").write_text(",".join(COLUMNS) + "\n")
        spec = {"keys": ["id"], "replication_key": "updated_at", "schema": SCHEMA}
        return TapKit(
            tap=CsvTap,
            config={"base_path": str(data), "files": [{"entity": s, "path": f"{s}-*.csv", **spec} for s in streams]},
            streams=streams,
            put_rows=put_rows,
            workdir=tmp_path,
        )
