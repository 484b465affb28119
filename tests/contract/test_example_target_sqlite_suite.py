"""The SQLite target of docs/writing-a-connector.md (examples/target_sqlite/, on SqlLoader) runs the
whole shared target suite: the proof that a SQL target of about 150 lines gets everything the
framework promises."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from examples.target_sqlite.target import SqliteTarget
from tests.kit.kit import TargetKit
from tests.kit.target_suite import TargetSuite


class TestExampleTargetSqlite(TargetSuite):
    @pytest.fixture
    def target_kit(self, tmp_path: Path) -> TargetKit:
        db = tmp_path / "suite.sqlite"

        def query(sql: str) -> list[dict[str, Any]]:
            with sqlite3.connect(db) as conn:
                cursor = conn.execute(sql)
                names = [d[0] for d in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        def tables() -> set[str]:
            if not db.exists():
                return set()
            return {r["name"] for r in query("SELECT name FROM sqlite_master WHERE type = 'table'")}

        def read_table(table: str) -> list[dict[str, Any]] | None:
            if table not in tables():
                return None
            return query(f'SELECT * FROM "{table}"')

        return TargetKit(
            target=SqliteTarget,
            config={"path": str(db)},
            read_table=read_table,
            tables=tables,
            workdir=tmp_path,
            lacks={"type_change": "SQLite has no boolean type: a boolean column is an INTEGER one, holding integers"},
        )
