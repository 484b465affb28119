"""tap-postgres runs the shared tap suite (tests/kit/tap_suite.py) against the session's real PostgreSQL
server: two tables in a schema of its own per test (the `src` fixture of tests/service/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from dpone.taps.postgres.tap import PostgresTap
from tests.kit.kit import TapKit
from tests.kit.tap_suite import TapSuite

pytestmark = pytest.mark.service


class TestTapPostgres(TapSuite):
    @pytest.fixture
    def tap_kit(self, src: Any, tmp_path: Path) -> TapKit:
        tables = ("items", "others")
        for name in tables:
            src.sql(f"CREATE TABLE {name} (id int PRIMARY KEY, name text, updated_at timestamptz)")

        def put_rows(stream: str, rows: list[dict[str, Any]]) -> None:
            table = stream.removeprefix(f"{src.schema}-")
            insert = sql.SQL("INSERT INTO {} (id, name, updated_at) VALUES (%(id)s, %(name)s, %(updated_at)s)")
            with src.conn.cursor() as cursor:
                cursor.executemany(insert.format(sql.Identifier(table)), rows)

        return TapKit(
            tap=PostgresTap,
            config=src.config(),
            streams=(src.stream(tables[0]), src.stream(tables[1])),
            put_rows=put_rows,
            workdir=tmp_path,
            resumes_full_table=True,
        )
