"""target-duckdb runs the shared target suite (tests/kit/target_suite.py) on a DuckDB file of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from dpone.targets.duckdb.target import DuckDBTarget
from tests.kit.kit import TargetKit
from tests.kit.target_suite import TargetSuite


class TestTargetDuckDB(TargetSuite):
    @pytest.fixture
    def target_kit(self, tmp_path: Path) -> TargetKit:
        db = tmp_path / "suite.duckdb"

        def query(sql: str) -> list[dict[str, Any]]:
            # Read-write like the target's own connection: DuckDB shares one instance per file and
            # configuration within a process, so reading during an in-process run works.
            with duckdb.connect(str(db)) as conn:
                cursor = conn.execute(sql)
                names = [d[0] for d in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        def tables() -> set[str]:
            if not db.exists():
                return set()
            return {r["table_name"] for r in query("SELECT table_name FROM duckdb_tables()")}

        def read_table(table: str) -> list[dict[str, Any]] | None:
            if table not in tables():
                return None
            return query(f'SELECT * FROM main."{table}"')

        return TargetKit(
            target=DuckDBTarget,
            config={"filepath": str(db)},
            read_table=read_table,
            tables=tables,
            workdir=tmp_path,
            says={
                "bad_value": ("line 6, stream 'people', column 'id': 'not-a-number' is not an integer",),
                "type_change": ("column 'v': is BOOLEAN", "BIGINT"),
            },
        )
