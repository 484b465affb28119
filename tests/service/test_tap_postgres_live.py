"""tap-postgres against a real server you give it: DPONE_TEST_POSTGRES_DSN (a libpq URL or key=value
string; the user needs CREATE on the database). Each test works in a fresh schema and drops it.

    export DPONE_TEST_POSTGRES_DSN=postgresql://etl:pw@db.example:5432/scratch
    pytest tests/service/test_tap_postgres_live.py

LOG_BASED is exercised when the server has wal_level=logical and wal2json and the user may create
a replication slot; otherwise the test checks that the tap says which of these is missing.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dpone.targets.postgres.target import PostgresTarget
from tests.service.test_postgres_round_trip import compare, fill_source, target_config
from tests.service.test_tap_postgres import (
    EVERY_TYPE_SCHEMA,
    EVERY_TYPE_VALUES,
    Source,
    create_every_type,
    error_line,
    ok,
    q,
    records,
)

DSN = os.environ.get("DPONE_TEST_POSTGRES_DSN", "")

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not DSN, reason="DPONE_TEST_POSTGRES_DSN is not set: no live PostgreSQL server to read"),
]


class LiveSource(Source):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.slot = f"dpone_live_{uuid.uuid4().hex[:10]}"

    def close(self) -> None:
        self.conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
        )
        super().close()


@pytest.fixture
def live(run_tap, tmp_path) -> Iterator[LiveSource]:
    source = LiveSource(DSN, {"dsn": DSN}, run_tap, tmp_path)
    try:
        yield source
    finally:
        source.close()


def test_live_discovery_and_full_table_values(live):
    create_every_type(live)
    catalog = live.discover()
    entry = catalog.get(live.stream("every_type"))
    assert entry is not None
    assert entry.schema["properties"] == EVERY_TYPE_SCHEMA
    assert entry.key_properties == ["id"]
    run = ok(live.sync(live.catalog("every_type", catalog=catalog)))
    row = records(run)[0]
    # The server's TimeZone decides the offset; the instant is what must match.
    stamp = row.pop("c_timestamptz")
    assert dt.datetime.fromisoformat(stamp) == dt.datetime.fromisoformat(EVERY_TYPE_VALUES["c_timestamptz"])
    assert row == {k: v for k, v in EVERY_TYPE_VALUES.items() if k != "c_timestamptz"}
    kinds = [m["type"] for m in run.messages]
    assert kinds == ["SCHEMA", "ACTIVATE_VERSION", "RECORD", "RECORD", "ACTIVATE_VERSION", "STATE"]


def test_live_round_trip_into_another_schema(live, run_target):
    fill_source(live)
    tapped = ok(live.sync(live.catalog("every_type")))
    dest_schema = f"{live.schema}_copy"
    try:
        loaded = run_target(
            PostgresTarget, target_config(live, live.database, dest_schema, "every_type"), tapped.stdout
        )
        assert loaded.rc == 0, loaded.stderr
        assert loaded.states[-1] == tapped.states[-1]
        compare(live.conn, "every_type", live.conn, f"{q(dest_schema)}.every_type")
    finally:
        live.sql(f"DROP SCHEMA IF EXISTS {q(dest_schema)} CASCADE")


def test_live_incremental_resumes_from_the_bookmark(live):
    live.sql(
        "CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz)",
        "INSERT INTO events SELECT g, timestamptz '2024-01-01 00:00+00' + g * interval '1 hour' "
        "FROM generate_series(1, 5) g",
    )
    catalog = live.catalog("events", "INCREMENTAL", "updated_at")
    first = ok(live.sync(catalog))
    assert [r["id"] for r in records(first)] == [1, 2, 3, 4, 5]
    live.sql("INSERT INTO events VALUES (6, '2024-02-01 00:00+00')")
    second = ok(live.sync(catalog, first.states[-1]))
    assert [r["id"] for r in records(second)] == [5, 6]


def test_live_log_based_or_a_clear_setup_error(live):
    live.sql("CREATE TABLE items (id int PRIMARY KEY, name text)", "INSERT INTO items VALUES (1, 'a')")
    catalog = live.discover(replication_slot=live.slot)
    for entry in catalog:
        entry.stream_metadata().update({"selected": True, "replication-method": "LOG_BASED"})
    first = live.sync(catalog, replication_slot=live.slot)
    level = live.scalar("SHOW wal_level")
    if level != "logical":
        assert f"LOG_BASED needs wal_level=logical (it is {level!r})" in error_line(first, "config", 78)
        return
    if first.rc != 0:
        # No wal2json on the server, or no REPLICATION attribute for the user: the tap says so.
        assert f"cannot create replication slot '{live.slot}'" in error_line(first, "config", 78)
        return
    assert [r["id"] for r in records(first)] == [1]
    live.sql("CREATE TABLE IF NOT EXISTS wal_spacer (n int)", "INSERT INTO wal_spacer VALUES (1)")
    live.sql(
        "INSERT INTO items VALUES (2, 'b')",
        "UPDATE items SET name = 'A' WHERE id = 1",
        "DELETE FROM items WHERE id = 2",
    )
    second = ok(live.sync(catalog, first.states[-1], replication_slot=live.slot))
    changes = [(r["id"], r.get("name"), r["_sdc_deleted_at"] is not None) for r in records(second)]
    assert changes == [(2, "b", False), (1, "A", False), (2, None, True)]
