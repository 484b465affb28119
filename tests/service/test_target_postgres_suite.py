"""target-postgres runs the shared target suite (tests/kit/target_suite.py) against the session's real
PostgreSQL server, in a schema of its own per test (the `pg` fixture of tests/service/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from dpone.targets.postgres.target import PostgresTarget
from tests.kit.kit import TargetKit
from tests.kit.target_suite import TargetSuite

pytestmark = pytest.mark.service


class TestTargetPostgres(TargetSuite):
    @pytest.fixture
    def target_kit(self, pg: Any, tmp_path: Path) -> TargetKit:
        def read_table(table: str) -> list[dict[str, Any]] | None:
            if table not in pg.tables():
                return None
            cursor = pg.conn.execute(
                sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(pg.schema), sql.Identifier(table))
            )
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        def no_nul_characters(kit: TargetKit) -> None:
            # nul_character_policy defaults to strip: PostgreSQL text cannot hold U+0000.
            texts = [r["info"] for r in read_table("test_strings") or []]
            assert not any("\x00" in t for t in texts if t)

        return TargetKit(
            target=PostgresTarget,
            config=pg.config(),
            read_table=read_table,
            tables=pg.tables,
            workdir=tmp_path,
            says={
                "bad_value": ("bigint",),
                "failed_overwrite": ('"bad"',),
                "type_change": ("column 'v': is boolean", "bigint"),
            },
            also={"sdk:encoded_string_data": no_nul_characters},
        )
