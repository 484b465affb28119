"""The PostgreSQL half of tests/contract/test_third_party.py: third-party taps into target-postgres,
tap-postgres into meltanolabs-target-csv. Each test works in a schema of its own on the session server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dpone.taps.postgres.tap import PostgresTap
from dpone.targets.postgres.target import PostgresTarget
from tests.contract.test_third_party import messages, read_csv, singer_python_tap, tap_jsonl, target_csv

pytestmark = [pytest.mark.service, pytest.mark.slow]


class Schema:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.name = f"tp3_{uuid.uuid4().hex[:10]}"
        self.conn = psycopg.connect(server.dsn, autocommit=True)
        self.conn.execute(f'CREATE SCHEMA "{self.name}"')  # type: ignore[arg-type]

    def target_config(self) -> dict[str, Any]:
        return {**self.server.config(), "default_target_schema": self.name}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql.replace("{schema}", f'"{self.name}"')).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def schema(postgres_server) -> Iterator[Schema]:
    s = Schema(postgres_server)
    try:
        yield s
    finally:
        s.conn.execute(f'DROP SCHEMA IF EXISTS "{s.name}" CASCADE')  # type: ignore[arg-type]
        s.conn.close()


def test_an_sdk_tap_loads_into_target_postgres(run_target, tmp_path, schema):
    data = tap_jsonl(tmp_path)
    result = run_target(PostgresTarget, schema.target_config(), data)
    assert result.rc == 0, result.stderr
    assert result.states[-1] == [m["value"] for m in messages(data) if m["type"] == "STATE"][-1]
    rows = schema.rows("SELECT id, name, score, meta, tags FROM {schema}.people ORDER BY id")
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "Ada", 1.5), (2, None, None), (3, "Grace", 3.25)]
    assert rows[2][3] == {"k": {"deep": True}} and rows[2][4] == ["b", "c"]


def test_a_singer_python_tap_loads_into_target_postgres_and_resumes(run_target, tmp_path, schema):
    first = run_target(PostgresTarget, schema.target_config(), singer_python_tap(tmp_path))
    assert first.rc == 0, first.stderr
    echoed = first.states[-1]
    assert schema.rows("SELECT count(*) FROM {schema}.people") == [(5,)]
    row = schema.rows("SELECT name, address, tags, updated_at FROM {schema}.people WHERE id = 1")[0]
    assert row[0] == "person 1" and row[1] == {"city": "city 1", "zip": "10001"} and row[2] == ["t1", "all"]
    assert row[3].isoformat().startswith("2024-01-01T01:00:00")

    second = run_target(PostgresTarget, schema.target_config(), singer_python_tap(tmp_path, echoed))
    assert second.rc == 0, second.stderr
    assert schema.rows("SELECT count(*) FROM {schema}.people") == [(5,)]
    assert schema.rows("SELECT count(*) FROM {schema}.events") == [(2,)]


def test_tap_postgres_loads_into_meltanolabs_target_csv(run_tap, tmp_path, schema):
    schema.conn.execute(
        f'CREATE TABLE "{schema.name}".items (id integer PRIMARY KEY, label text, price numeric(8,2), '  # type: ignore[arg-type]
        "added timestamptz, doc jsonb)"
    )
    schema.conn.execute(
        f'INSERT INTO "{schema.name}".items VALUES '  # type: ignore[arg-type]
        "(1, 'plain', 1.50, '2024-01-01T00:00:00Z', '{\"a\": 1}'), (2, 'with, comma \"q\"', NULL, NULL, NULL)"
    )
    config = {**schema.server.config(), "include": [f"{schema.name}.items"]}
    tap = run_tap(PostgresTap, config)
    assert tap.rc == 0, tap.stderr
    out, _ = target_csv(tmp_path, tap.stdout)
    (path,) = out.glob("*.csv")
    assert path.name == f"{schema.name}-items.csv"
    rows = read_csv(path)
    assert [r["id"] for r in rows] == ["1", "2"]
    assert [r["label"] for r in rows] == ["plain", 'with, comma "q"']
    assert rows[0]["price"] == "1.50" and rows[1]["price"] == ""
    assert rows[0]["added"].startswith("2024-01-01")
