"""The SQLite tap of docs/writing-a-connector.md (examples/tap_sqlite/, a dialect on the SQL stream
base) runs the whole shared tap suite: the proof that a database tap is its dialect."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from examples.tap_sqlite.tap import SqliteTap
from tests.kit.kit import TapKit
from tests.kit.tap_suite import TapSuite


class TestExampleTapSqlite(TapSuite):
    @pytest.fixture
    def tap_kit(self, tmp_path: Path) -> TapKit:
        db = tmp_path / "source.sqlite"
        tables = ("items", "others")
        with sqlite3.connect(db) as conn:
            for name in tables:
                conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, name TEXT, updated_at TIMESTAMP)")

        def put_rows(stream: str, rows: list[dict[str, Any]]) -> None:
            table = stream.removeprefix("main-")
            with sqlite3.connect(db) as conn:
                conn.executemany(
                    f"INSERT INTO {table} (id, name, updated_at) VALUES (:id, :name, :updated_at)",
                    rows,
                )

        return TapKit(
            tap=SqliteTap,
            config={"path": str(db)},
            streams=("main-items", "main-others"),
            put_rows=put_rows,
            workdir=tmp_path,
            resumes_full_table=True,
        )
