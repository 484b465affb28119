"""The SQLite target of docs/writing-a-connector.md (examples/target_sqlite/, on SqlLoader) runs the
whole shared target suite: the proof that a SQL target of about 150 lines gets everything the
framework promises."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from examples.target_sqlite.target import SqliteTarget
from tests.kit.kit import SqlReader, TargetKit
from tests.kit.target_suite import TargetSuite


class TestExampleTargetSqlite(TargetSuite):
    @pytest.fixture
    def target_kit(self, tmp_path: Path) -> TargetKit:
        db = tmp_path / "suite.sqlite"
        reader = SqlReader(
            lambda: sqlite3.connect(db), "SELECT name FROM sqlite_master WHERE type = 'table'", exists=db.exists
        )
        return TargetKit(
            target=SqliteTarget,
            config={"path": str(db)},
            read_table=reader.read_table,
            tables=reader.tables,
            workdir=tmp_path,
            lacks={"type_change": "SQLite has no boolean type: a boolean column is an INTEGER one, holding integers"},
        )
