"""target-postgres against a real server you give it: DPONE_TEST_POSTGRES_DSN (a libpq URL or key=value
string; the user needs CREATE on the database). Each test loads into a fresh schema and drops it.

    export DPONE_TEST_POSTGRES_DSN=postgresql://loader:pw@db.example:5432/scratch
    pytest tests/service/test_target_postgres_live.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import lines, record, schema, state
from tests.service.test_target_postgres import PROPS, Pg, check_all_types_round_trip, ok, people

DSN = os.environ.get("DPONE_TEST_POSTGRES_DSN", "")

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not DSN, reason="DPONE_TEST_POSTGRES_DSN is not set: no live PostgreSQL server to load into"),
]


@pytest.fixture
def live() -> Iterator[Pg]:
    helper = Pg(DSN, {"dsn": DSN}, f"dpone_live_{uuid.uuid4().hex[:12]}")
    try:
        yield helper
    finally:
        helper.drop()


def test_live_all_types_round_trip(run_target, live):
    check_all_types_round_trip(run_target, live)


def test_live_upsert_fast_path_merge_and_idempotency(run_target, live):
    config: dict[str, Any] = live.config(batch_size_rows=3)
    at = "2024-05-01T10:00:00+00:00"
    first = lines(schema("people", PROPS), *people((1, "a"), (2, "b"), (1, "a2"), time_extracted=at), state({"s": 1}))
    assert ok(run_target(PostgresTarget, config, first)).states == [{"s": 1}]
    assert live.rows("SELECT id, name FROM people ORDER BY id") == [(1, "a2"), (2, "b")]

    second = lines(
        schema("people", PROPS),
        *people((2, "b2"), (3, "c"), (2, "b3"), (4, "d"), time_extracted=at),
        record("people", {"id": 1, "name": "a2", "_sdc_deleted_at": at}, time_extracted=at),
        state({"s": 2}),
    )
    assert ok(run_target(PostgresTarget, config, second)).states == [{"s": 2}]
    expected = [(1, "a2", True), (2, "b3", False), (3, "c", False), (4, "d", False)]
    got = "SELECT id, name, _sdc_deleted_at IS NOT NULL FROM people ORDER BY id"
    assert live.rows(got) == expected

    cols = "id, name, _sdc_extracted_at, _sdc_deleted_at, _sdc_table_version"
    live.conn.execute(f"CREATE TABLE snapshot AS SELECT {cols} FROM people")
    assert ok(run_target(PostgresTarget, config, second)).states == [{"s": 2}]
    assert live.rows(f"SELECT {cols} FROM people EXCEPT SELECT {cols} FROM snapshot") == []
    assert live.rows(f"SELECT {cols} FROM snapshot EXCEPT SELECT {cols} FROM people") == []
    assert live.rows(got) == expected
