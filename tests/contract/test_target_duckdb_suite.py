"""target-duckdb runs the shared target suite (tests/kit/target_suite.py) on a DuckDB file of its own."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from dpone.targets.duckdb.target import DuckDBTarget
from tests.kit.kit import SqlReader, TargetKit
from tests.kit.target_suite import TargetSuite


class TestTargetDuckDB(TargetSuite):
    @pytest.fixture
    def target_kit(self, tmp_path: Path) -> TargetKit:
        db = tmp_path / "suite.duckdb"
        # Read-write like the target's own connection: DuckDB shares one instance per file and
        # configuration within a process, so reading during an in-process run works.
        reader = SqlReader(
            lambda: duckdb.connect(str(db)),
            "SELECT table_name FROM duckdb_tables()",
            'SELECT * FROM main."{table}"',
            db.exists,
        )
        return TargetKit(
            target=DuckDBTarget,
            config={"filepath": str(db)},
            read_table=reader.read_table,
            tables=reader.tables,
            workdir=tmp_path,
            says={
                "bad_value": ("line 6, stream 'people', column 'id': 'not-a-number' is not an integer",),
                "type_change": ("column 'v': is BOOLEAN", "BIGINT"),
            },
        )
