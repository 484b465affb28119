"""tap-postgres `--discover` against a real server passes the singer-check-tap-style validator,
and every stream syncs selected with standard metadata (tests/contract/test_discover_validation.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dpone.taps.postgres.tap import PostgresTap
from tests.contract.test_discover_validation import check_tap

pytestmark = pytest.mark.service

DDL = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE people (
    id integer PRIMARY KEY, name text NOT NULL, nick varchar(10), score numeric(8,2), ratio double precision,
    active boolean, born date, seen timestamptz, updated_at timestamp, tags text[], doc jsonb, blob bytea,
    feeling mood, uid uuid
);
CREATE TABLE line_items (order_id bigint, line smallint, qty integer, PRIMARY KEY (order_id, line));
CREATE TABLE no_key (msg text, "Mixed Case" text, "dotted.name" integer);
CREATE VIEW active_people AS SELECT id, name, seen FROM people WHERE active;
INSERT INTO people VALUES
    (1, 'Ada', 'a', 1.50, 0.5, true, '1990-01-02', '2024-01-01T00:00:00Z', '2024-01-01 00:00:00', '{x,y}',
     '{"k": [1, {"n": null}]}', '\\x00ff', 'happy', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
    (2, 'Bob', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO line_items VALUES (1, 1, 3), (1, 2, 4);
INSERT INTO no_key VALUES ('hello', 'm', 1);
"""


@pytest.fixture(scope="module")
def database(postgres_server) -> Iterator[dict[str, Any]]:
    name = f"discover_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    config = postgres_server.config(name)
    try:
        with psycopg.connect(postgres_server.dsn.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as conn:
            conn.execute(DDL)  # type: ignore[arg-type]
        yield config
    finally:
        with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_tap_postgres_discovery_is_valid_and_every_stream_syncs(run_tap, tmp_path, database):
    config = {**database, "include": ["public.*"]}
    # Discovery suggests no replication key (any sortable column may be one): the user picks it.
    synced = check_tap(run_tap, tmp_path, PostgresTap, config, {"public-people": "updated_at"})
    streams = {"public-people", "public-line_items", "public-no_key", "public-active_people"}
    assert {stream for stream, _ in synced} == streams
    assert ("public-people", "INCREMENTAL") in synced
